"""Storage: the SQLAlchemy models, engine and sessions, migrations, and one module per aggregate."""
