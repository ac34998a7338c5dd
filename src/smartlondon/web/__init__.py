"""Server-rendered web interface (Jinja2 templates, GOV.UK Frontend components, static assets)."""
