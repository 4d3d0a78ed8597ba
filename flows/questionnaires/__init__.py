"""The questionnaires shipped with svarbot (YAML files; see README.md here)."""
