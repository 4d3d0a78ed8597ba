"""Migration revisions, one file each, written by hand and never edited once released."""
