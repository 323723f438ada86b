package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/verify"
)

func newVerifyCmd() *cobra.Command {
	var (
		run           string
		verbose       bool
		trace         bool
		output        string
		httpSend      bool
		celFirst      bool
		failurePolicy string
	)
	cmd := &cobra.Command{
		Use:   "verify path [--run=name]",
		Short: "verify suites of tests on Gatekeeper Constraints",
		Long: `Run gator-format test suites (kind: Suite, apiVersion: test.gatekeeper.sh/v1alpha1), as gator verify does.

A path may be a suite file, a directory (the suites in it) or DIR/... (every
suite below it); several paths may be given. YAML files that are not suites are
ignored. Output is gator's: --- FAIL per failing test and case (-v adds
=== RUN, --- PASS and === SKIP), ok or FAIL per suite, and a final PASS or
FAIL. -o junit prints JUnit XML instead, -o json a JSON report; either alone on
standard output. The exit status is 1 on any failure or error.

A test's expansion: file of ExpansionTemplates makes each case's object also be
judged by what it expands into (a Deployment by its Pod), as in gator: those
violations read "[Implied by <template>] <message>". A test's mutators: files
(a Portcullis addition: gator has no mutators in suites) and mutators among a
case's inventory apply to the case's object (source Original), then to what it
expands into (source Generated), as in a cluster.`,
		Example: `# Run all tests in label-tests.yaml
portcullis verify label-tests.yaml

# Run all tests whose names contain "forbid-labels".
portcullis verify tests/... --run forbid-labels//

# Run all cases whose names exactly match "nginx-deployment".
portcullis verify tests/... --run '//^nginx-deployment$'

# JUnit XML for CI
portcullis verify tests/... -o junit > report.xml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stderr := cmd.ErrOrStderr()
			if err := checkFailurePolicy(failurePolicy); err != nil {
				return fmt.Errorf("invalid default K8sNativeValidation failure policy: %w", err)
			}
			output = strings.ToLower(output)
			if output != "" && output != "junit" && output != "json" {
				return fmt.Errorf("-o: %q is not junit or json", output)
			}
			r := &verify.Runner{Trace: trace, Warn: func(w string) { fmt.Fprintf(stderr, "warning: %s\n", w) }}
			r.EngineOptions.EnableHTTPSend = httpSend
			r.EngineOptions.DisableK8sNativeValidation = !celFirst
			r.EngineOptions.DefaultK8sNativeValidationFailurePolicy = failurePolicy
			suites, err := verify.FindSuites(args)
			if err != nil {
				return fmt.Errorf("listing test files: %w", err)
			}
			if r.Filter, err = verify.NewFilter(run); err != nil {
				return fmt.Errorf("compiling filter: %w", err)
			}
			if len(suites) == 0 {
				fmt.Fprintf(stderr, "warning: no suites (kind: %s, apiVersion: %s) found in %s\n", verify.SuiteKind, verify.SuiteAPIVersion, strings.Join(args, " "))
			}
			results := make([]verify.SuiteResult, 0, len(suites))
			for _, s := range suites {
				for _, w := range s.Warnings {
					fmt.Fprintf(stderr, "warning: %s\n", w)
				}
				results = append(results, r.RunSuite(cmd.Context(), s))
			}
			out := cmd.OutOrStdout()
			var pass bool
			switch output {
			case "junit":
				if pass, err = verify.WriteJUnit(out, results); err != nil {
					return err
				}
			case "json":
				if pass, err = verify.WriteJSON(out, results); err != nil {
					return err
				}
			default:
				pass = verify.Print(out, results, verbose)
				// gator prints its report with Println: one more newline.
				fmt.Fprintln(out)
			}
			if !pass {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&run, "run", "r", "", "regular expression which filters tests to run by name (TEST//CASE filters both)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print extended test output")
	cmd.Flags().BoolVarP(&trace, "trace", "t", false, "include a trace for the underlying constraint framework evaluation")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: junit (JUnit XML) or json; default gator's text")
	cmd.Flags().BoolVar(&httpSend, "enable-http-send", false, "allow the http.send Rego builtin")
	cmd.Flags().BoolVar(&celFirst, "enable-k8s-native-validation", true, k8sNativeValidationUsage)
	cmd.Flags().StringVar(&failurePolicy, "default-k8s-native-validation-failure-policy", "Fail", failurePolicyUsage)
	return cmd
}
