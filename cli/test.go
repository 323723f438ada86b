package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/engine"
)

// testResult is gator test's JSON result shape.
type testResult struct {
	Target            string                     `json:"target"`
	Msg               string                     `json:"msg,omitempty"`
	Metadata          map[string]any             `json:"metadata,omitempty"`
	Constraint        *unstructured.Unstructured `json:"constraint,omitempty"`
	EnforcementAction string                     `json:"enforcementAction,omitempty"`
	ScopedActions     []string                   `json:"scopedActions,omitempty"`
	ViolatingObject   *unstructured.Unstructured `json:"violatingObject,omitempty"`
}

func newTestCmd() *cobra.Command {
	var (
		files    []string
		output   string
		httpSend bool
		celFirst bool
	)
	cmd := &cobra.Command{
		Use:   "test -f FILE|DIR|- ...",
		Short: "Evaluate objects against the templates and constraints given",
		Long: `Evaluate every object against every template and constraint given with -f.

Templates and constraints may sit in the same files as the objects. Every other
object is also added to data.inventory, so referential policies see it.
Output is human-readable, or gator's result shape with -o json|yaml.
The exit status is 1 only when a violation has the deny action.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" && output != "yaml" {
				return fmt.Errorf("-o: %q is not json or yaml", output)
			}
			ctx := cmd.Context()
			ps, err := loadPolicySet(ctx, files, cmd.InOrStdin(), engine.Options{
				EnforcementPoints: []string{engine.EnforcementPointGator},
				EnableHTTPSend:    httpSend,

				DisableK8sNativeValidation: !celFirst,
			}, nil)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			results := []testResult{}
			denied := false
			for _, item := range ps.objects {
				resp, err := ps.engine.Review(ctx, item.input, engine.EnforcementPointGator)
				if err != nil {
					return fmt.Errorf("%s: %w", item.source, err)
				}
				for _, v := range resp.Violations {
					if v.HasAction(engine.ActionDeny) {
						denied = true
					}
					r := testResult{
						Target:            engine.TargetName,
						Msg:               v.Message,
						Constraint:        v.Constraint,
						EnforcementAction: v.EnforcementAction,
						ViolatingObject:   item.obj,
					}
					if v.Details != nil {
						r.Metadata = map[string]any{"details": v.Details}
					}
					if v.EnforcementAction == engine.ActionScoped {
						r.ScopedActions = v.Actions
					}
					results = append(results, r)
					if output == "" {
						fmt.Fprintf(out, "%s: [%s] %s (%s)\n", describe(item.obj), v.Constraint.GetName(), v.Message,
							joinActions(v.Actions))
					}
				}
			}
			switch output {
			case "json":
				b, err := json.MarshalIndent(results, "", "    ")
				if err != nil {
					return fmt.Errorf("encoding results: %w", err)
				}
				fmt.Fprintln(out, string(b))
			case "yaml":
				b, err := yaml.Marshal(results)
				if err != nil {
					return fmt.Errorf("encoding results: %w", err)
				}
				fmt.Fprint(out, string(b))
			}
			if denied {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "a file or directory of YAML/JSON objects, or - for standard input (repeatable)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default human-readable)")
	cmd.Flags().BoolVar(&httpSend, "enable-http-send", false, "allow the http.send Rego builtin")
	cmd.Flags().BoolVar(&celFirst, "enable-k8s-native-validation", true, k8sNativeValidationUsage)
	return cmd
}

func joinActions(actions []string) string {
	if len(actions) == 0 {
		return "no action"
	}
	var s strings.Builder
	s.WriteString(actions[0])
	for _, a := range actions[1:] {
		s.WriteString(", " + a)
	}
	return s.String()
}
