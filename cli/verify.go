package cli

import (
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/verify"
)

func newVerifyCmd() *cobra.Command {
	var (
		run      string
		verbose  bool
		httpSend bool
		celFirst bool
	)
	cmd := &cobra.Command{
		Use:   "verify PATH...",
		Short: "Run gator-format test suites (kind: Suite); PATH/... recurses",
		Long: `Run gator-format test suites (kind: Suite, apiVersion: test.gatekeeper.sh/v1alpha1).

A PATH may be a suite file, a directory (its suites), or DIR/... (every suite
below it). Output follows go test: --- FAIL per failing test and case, ok or
FAIL per suite, and a final PASS or FAIL. The exit status is 1 on any failure.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := &verify.Runner{}
			r.EngineOptions.EnableHTTPSend = httpSend
			r.EngineOptions.DisableK8sNativeValidation = !celFirst
			if run != "" {
				re, err := regexp.Compile(run)
				if err != nil {
					return fmt.Errorf("--run: %w", err)
				}
				r.Run = re
			}
			suites, err := verify.FindSuites(args)
			if err != nil {
				return err
			}
			if len(suites) == 0 {
				return fmt.Errorf("no suites (kind: %s, apiVersion: %s) found in %v", verify.SuiteKind, verify.SuiteAPIVersion, args)
			}
			results := make([]verify.SuiteResult, 0, len(suites))
			for _, s := range suites {
				results = append(results, r.RunSuite(cmd.Context(), s))
			}
			out := cmd.OutOrStdout()
			pass := verify.Print(out, results, verbose)
			if verbose {
				c := verify.Count(results)
				fmt.Fprintf(out, "%d suites, %d tests, %d cases; %d passed, %d failed\n",
					c.Suites, c.Tests, c.Cases, c.Cases-c.FailedCases, c.FailedCases)
			}
			if !pass {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&run, "run", "r", "", "run only tests and cases whose name matches this regular expression")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every test and case, not only failures")
	cmd.Flags().BoolVar(&httpSend, "enable-http-send", false, "allow the http.send Rego builtin")
	cmd.Flags().BoolVar(&celFirst, "enable-k8s-native-validation", true, k8sNativeValidationUsage)
	return cmd
}
