"""Users, roles, sessions, API bearer tokens and read-only display tokens."""
