package cli

import "github.com/spf13/cobra"

func newTestCmd() *cobra.Command  { return &cobra.Command{Use: "test"} }
func newBenchCmd() *cobra.Command { return &cobra.Command{Use: "bench"} }
