"""SQLAlchemy storage for the service: schema, migrations, repositories."""
