"""The database: identity side (who was invited) and the anonymised answer store."""
