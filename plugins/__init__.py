"""Built-in plugins, loaded through the same entry-point path as third-party ones."""
