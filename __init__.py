"""crm-rules: customer grading and service policies in YAML, compiled to SQL over SQLite."""
