"""Database access: engine factories, models, migrations, the embedded server."""
