"""One output layer: Go templates, Docker's tab writer, and time/size text, shared by every command that prints.

`template` parses and runs Go's text/template (values in `govalues`, callable functions in `functions`);
`table` is Go's text/tabwriter as docker-cli configures it plus the `--format` conventions (`table` prefix,
`json`); `timefmt` parses and prints RFC 3339 and Docker's "2 hours ago". Sizes and durations are go-units'
(pyctr.units). Nothing here imports a command or a runtime module: they all import this.
"""
