package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// ManagerEntryPoint is the name under which the binary runs `portcullis
// manager --gatekeeper-defaults` with its arguments: the image's /manager,
// which Gatekeeper's chart runs with Gatekeeper's manager flags.
const ManagerEntryPoint = "manager"

// Args are the arguments of Main for a process started as argv: argv[1:],
// or as ManagerEntryPoint the manager's, with Gatekeeper's defaults.
func Args(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	if filepath.Base(argv[0]) == ManagerEntryPoint {
		return append([]string{"manager", "--gatekeeper-defaults"}, argv[1:]...)
	}
	return argv[1:]
}

// Main runs the portcullis command line and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	if ee, ok := errors.AsType[exitError](err); ok {
		return ee.code
	}
	fmt.Fprintf(stderr, "portcullis: %v\n", err)
	if cmd != nil && (cmd.Name() == "test" || cmd.Name() == "verify" || cmd.Name() == "expand" || cmd.Name() == "mutate") {
		// gator exits 1 on any error, bad flags and arguments included;
		// mutate does the same.
		return 1
	}
	return 2
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "portcullis",
		Short:         "A Gatekeeper-compatible policy controller for Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newVerifyCmd(), newTestCmd(), newExpandCmd(), newBenchCmd(), newManagerCmd(), newDevCmd(), newMutateCmd())
	return root
}
