"""The ``uattr`` command: one module per subcommand (``uattr/bin/<name>.py`` is ``uattr <name-with-dashes>``)."""
