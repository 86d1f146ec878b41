"""One module per `blendset` subcommand. Each parses options and delegates to library code."""
