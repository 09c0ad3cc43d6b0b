"""Small helpers the pages share."""
