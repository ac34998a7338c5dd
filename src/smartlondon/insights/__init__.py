"""City analytics (insights): models and pipelines over the platform's data, starting with air quality."""
