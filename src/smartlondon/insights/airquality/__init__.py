"""Air quality everywhere: estimators of hourly pollution at any point, their evaluation and model card."""
