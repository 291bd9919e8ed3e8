"""One output layer: Go templates, Docker's tab writer, and time/size text, shared by every command that prints.

`template` is Go's text/template with docker-cli's functions; `table` is Go's text/tabwriter as docker-cli
configures it plus the `--format` conventions (`table` prefix, `json`); `timefmt` parses and prints RFC 3339.
"""
