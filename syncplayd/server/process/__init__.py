"""Process plumbing: the daemon root, systemd, reloads, maintenance, the admin socket."""
