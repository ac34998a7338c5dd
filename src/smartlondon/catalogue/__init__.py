"""The London Datastore: datasets, resources, search and download."""
