// Package cli holds the portcullis command and its subcommands.
package cli
