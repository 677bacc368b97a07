"""The recipes shipped with gentool (installed as the data package ``gentool_recipes``)."""
