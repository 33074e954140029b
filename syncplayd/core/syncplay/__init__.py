"""The Syncplay protocol, sans-I/O: its wire format and one client as a room member."""
