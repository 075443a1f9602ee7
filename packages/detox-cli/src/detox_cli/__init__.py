"""detox-cli: the ``detox`` command-line tool."""
