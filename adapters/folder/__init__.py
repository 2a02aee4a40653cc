"""Folder adapter: case systems that can only read and write files."""
