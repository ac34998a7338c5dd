"""The platform's core: database, migrations, accounts, audit log, storage, errors, pages."""
