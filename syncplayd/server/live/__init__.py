"""The live side: rooms in memory, their sockets, and what they write behind."""
