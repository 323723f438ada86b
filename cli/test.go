package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/frameworks/constraint/pkg/instrumentation"
	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// gatorResult is one result of gator test -o json: the frameworks' result
// fields (types.Result's JSON tags), the object and the trace.
type gatorResult struct {
	Target            string                     `json:"target"`
	Msg               string                     `json:"msg,omitempty"`
	Metadata          map[string]any             `json:"metadata,omitempty"`
	Constraint        *unstructured.Unstructured `json:"constraint,omitempty"`
	EnforcementAction string                     `json:"enforcementAction,omitempty"`
	ScopedActions     []string                   `json:"scopedActions,omitempty"`
	ViolatingObject   *unstructured.Unstructured `json:"violatingObject"`
	Trace             *string                    `json:"trace"`
}

// gatorYAMLResult is one result of gator test -o yaml. gator marshals its
// YamlGatorResult with yaml.v3, which knows no JSON tags: the embedded
// frameworks result becomes a `result:` mapping whose keys are the Go
// field names lowercased, and the constraint (an *Unstructured) an
// `object:` mapping.
type gatorYAMLResult struct {
	Result          gatorYAMLFrameworkResult `yaml:"result"`
	ViolatingObject map[string]any           `yaml:"violatingObject"`
	Trace           *string                  `yaml:"trace,flow"`
}

type gatorYAMLFrameworkResult struct {
	Target                   string          `yaml:"target"`
	Msg                      string          `yaml:"msg"`
	Metadata                 map[string]any  `yaml:"metadata"`
	Constraint               *yamlObjectOnly `yaml:"constraint"`
	EnforcementAction        string          `yaml:"enforcementaction"`
	ScopedEnforcementActions []string        `yaml:"scopedenforcementactions"`
}

// yamlObjectOnly is how yaml.v3 writes an *unstructured.Unstructured.
type yamlObjectOnly struct {
	Object map[string]any `yaml:"object"`
}

// failurePolicyUsage is the help of --default-k8s-native-validation-failure-policy.
const failurePolicyUsage = "(beta) Failure policy to use when a K8sNativeValidation source omits failurePolicy. Allowed values are Fail or Ignore. " +
	"Fail makes an evaluation error a violation; Ignore drops it"

// checkFailurePolicy checks --default-k8s-native-validation-failure-policy
// as Gatekeeper does.
func checkFailurePolicy(p string) error {
	if p != "Fail" && p != "Ignore" {
		return fmt.Errorf("unrecognized failure policy: %s", p)
	}
	return nil
}

// fatalf prints an error as gator does (its text alone, on standard
// error) and exits 1.
func fatalf(w io.Writer, format string, a ...any) error {
	fmt.Fprintf(w, format+"\n", a...)
	return exitError{code: 1}
}

func newTestCmd() *cobra.Command {
	var (
		files         []string
		images        []string
		output        string
		httpSend      bool
		celFirst      bool
		trace         bool
		stats         bool
		denyOnly      bool
		verbose       bool
		failurePolicy string
	)
	cmd := &cobra.Command{
		Use:   "test",
		Short: "test evaluates resources against policies as defined by constraint templates and constraints.",
		Long: `Evaluate every object given against every template and constraint given, as gator test does.

Input is every -f file or directory (only .yaml, .yml and .json files; a file
with another extension is an error, a directory skips them) and standard input
whenever it is not a terminal. Templates and constraints may sit in the same
files as the objects; every other object is also added to data.inventory.
An object without metadata.namespace is reviewed as if in a Namespace named "",
and one in "default" as if a "default" Namespace existed, as gator does.
Objects are also judged by what they expand into with the ExpansionTemplates
given (a Deployment by its Pod): such violations are reported against the
object, as "[Implied by <template>] <message>".

Results go to standard output, warnings and errors to standard error.
The exit status is 1 when a result has the deny action, or on any error.

OCI image inputs (gator's -i/--image) are not supported.`,
		Example: `# test a manifest containing Kubernetes objects, Constraint Templates, and Constraints
portcullis test --filename="manifest.yaml"

# test a directory
portcullis test --filename="config-and-policies/"

# Receive input from stdin
cat manifest.yaml | portcullis test

# Output structured violations data
portcullis test --filename="manifest.yaml" --output=json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stderr := cmd.ErrOrStderr()
			if err := checkFailurePolicy(failurePolicy); err != nil {
				return fatalf(stderr, "invalid default K8sNativeValidation failure policy: %v", err)
			}
			if len(images) > 0 {
				return fatalf(stderr, "reading: pulling image: OCI image inputs (-i/--image) are not supported by portcullis test; pull the image and give its files with -f")
			}
			inputs, err := readTestInputs(files, cmd.InOrStdin())
			if err != nil {
				return fatalf(stderr, "reading: %v", err)
			}
			for _, w := range duplicateWarnings(inputs) {
				fmt.Fprintln(stderr, w)
			}
			if len(inputs) == 0 {
				return fatalf(stderr, "no input data identified")
			}
			results, statsEntries, err := runGatorTest(cmd, inputs, engine.Options{
				EnforcementPoints: []string{engine.EnforcementPointGator},
				EnableHTTPSend:    httpSend,
				Tracing:           trace,
				GatherStats:       stats,

				DisableK8sNativeValidation:              !celFirst,
				DefaultK8sNativeValidationFailurePolicy: failurePolicy,
			})
			if err != nil {
				return fatalf(stderr, "auditing objects: %v", err)
			}
			shown := results
			if denyOnly {
				shown = nil
				for _, r := range results {
					if denies(r) {
						shown = append(shown, r)
					}
				}
			}
			text, err := formatGatorResults(output, shown, statsEntries)
			if err != nil {
				return fatalf(stderr, "%v", err)
			}
			fmt.Fprint(cmd.OutOrStdout(), text)
			if slices.ContainsFunc(results, denies) {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "a file or directory containing Kubernetes resources.  Can be specified multiple times. - reads standard input, which is also read whenever it is not a terminal")
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format.  One of: json|yaml.")
	cmd.Flags().BoolVarP(&trace, "trace", "t", false, "include a trace for the underlying Constraint Framework evaluation.")
	cmd.Flags().BoolVar(&stats, "stats", false, "include performance stats returned from the Constraint Framework.")
	cmd.Flags().BoolVar(&celFirst, "enable-k8s-native-validation", true, k8sNativeValidationUsage)
	cmd.Flags().StringVar(&failurePolicy, "default-k8s-native-validation-failure-policy", "Fail", failurePolicyUsage)
	cmd.Flags().StringArrayVarP(&images, "image", "i", nil, "not supported: gator's OCI image input; portcullis test refuses it (give the image's files with -f)")
	cmd.Flags().BoolVar(&denyOnly, "deny-only", false, "output only denied constraints")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print extended test output (gator prints the output of Rego print() calls; Portcullis's Rego engine compiles print() out, so there is none)")
	cmd.Flags().BoolVar(&httpSend, "enable-http-send", false, "allow the http.send Rego builtin")
	return cmd
}

// denies reports whether a result has the deny action, directly or scoped.
func denies(r *gatorResult) bool {
	return r.EnforcementAction == engine.ActionDeny || slices.Contains(r.ScopedActions, engine.ActionDeny)
}

// givenNamespaces are the Namespaces given among the inputs, by name.
type givenNamespaces map[string]*corev1.Namespace

// add keeps obj, read from source, if it is a Namespace.
func (g givenNamespaces) add(obj *unstructured.Unstructured, source string) error {
	if !engine.IsNamespace(obj) {
		return nil
	}
	ns, err := engine.NamespaceFromUnstructured(obj)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	g[ns.Name] = ns
	return nil
}

// reviewNamespace is the Namespace gator reviews an object with: an empty
// one for an object without metadata.namespace, the Namespace given in the
// input, a bare "default", or none (nil).
func reviewNamespace(obj *unstructured.Unstructured, given givenNamespaces) *corev1.Namespace {
	ns := obj.GetNamespace()
	if ns == "" {
		return &corev1.Namespace{}
	}
	if n, ok := given[ns]; ok {
		return n
	}
	if ns == "default" {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	}
	return nil
}

// runGatorTest reviews every object and returns gator's results, sorted as
// gator sorts them (by enforcement action, then message), and the stats.
func runGatorTest(cmd *cobra.Command, inputs []inputDoc, opts engine.Options) ([]*gatorResult, []*instrumentation.StatsEntry, error) {
	ctx := cmd.Context()
	docs := make([]manifest.Doc, len(inputs))
	for i, in := range inputs {
		docs[i] = in.Doc
	}
	ps, err := newPolicySet(ctx, docs, opts, nil)
	if err != nil {
		return nil, nil, err
	}
	// The Namespaces given, as the mutators given left them.
	namespaces := givenNamespaces{}
	for _, item := range ps.objects {
		if _, ok := item.input.(*engine.Object); !ok {
			continue
		}
		if err := namespaces.add(item.obj, item.source); err != nil {
			return nil, nil, err
		}
	}
	// Objects are also judged by what they expand into, as gator test
	// does with the ExpansionTemplates given; the mutators given apply
	// to the resultants (source Generated) as to the objects (Original).
	sys, err := loadExpansion(docs, ps.mutation.ForExpansion(), cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, err
	}
	if sys != nil {
		stderr := cmd.ErrOrStderr()
		for _, w := range sys.Unjudged(ps.constraintObjs) {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	reviewer := &expansion.Reviewer{Engine: ps.engine, System: sys}
	var (
		results  []*gatorResult
		stats    []*instrumentation.StatsEntry
		traceAll *string
	)
	for _, item := range ps.objects {
		in := item.input
		if o, ok := in.(*engine.Object); ok {
			o.Namespace = reviewNamespace(o.Object, namespaces)
		}
		resp, err := reviewer.Review(ctx, in, engine.EnforcementPointGator)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", item.source, err)
		}
		for i := range resp.Violations {
			v := &resp.Violations[i]
			r := &gatorResult{
				Target:            engine.TargetName,
				Msg:               v.Message,
				Metadata:          v.Metadata,
				EnforcementAction: v.EnforcementAction,
				ViolatingObject:   item.obj,
			}
			if v.Constraint != nil {
				r.Constraint = v.Constraint.DeepCopy()
			}
			if v.EnforcementAction == engine.ActionScoped {
				r.ScopedActions = v.Actions
			}
			results = append(results, r)
		}
		if opts.Tracing {
			t := ""
			if traceAll != nil {
				t = *traceAll
			}
			t = t + "\n\n" + resp.Trace
			traceAll = &t
		}
		stats = append(stats, resp.Stats...)
	}
	for _, r := range results {
		r.Trace = traceAll
	}
	sort.SliceStable(results, func(i, j int) bool {
		if results[i].EnforcementAction != results[j].EnforcementAction {
			return results[i].EnforcementAction < results[j].EnforcementAction
		}
		return results[i].Msg < results[j].Msg
	})
	return results, stats, nil
}

// formatGatorResults renders results as gator test does for -o json, -o yaml
// and otherwise its human-readable lines.
func formatGatorResults(output string, results []*gatorResult, stats []*instrumentation.StatsEntry) (string, error) {
	switch strings.ToLower(output) {
	case "json":
		var v any = results
		if stats != nil {
			v = map[string]any{"results": results, "stats": stats}
		}
		b, err := json.MarshalIndent(v, "", "    ")
		if err != nil {
			return "", fmt.Errorf("marshaling validation json results: %w", err)
		}
		return string(b), nil
	case "yaml":
		yr, err := toGatorYAML(results)
		if err != nil {
			return "", err
		}
		var v any = yr
		if stats != nil {
			// gator passes the stats through JSON first: their values
			// become JSON's numbers.
			b, err := json.Marshal(stats)
			if err != nil {
				return "", fmt.Errorf("pre-marshaling stats to json: %w", err)
			}
			var rt []*instrumentation.StatsEntry
			if err := json.Unmarshal(b, &rt); err != nil {
				return "", fmt.Errorf("pre-unmarshaling stats from json: %w", err)
			}
			v = struct {
				Results []*gatorYAMLResult
				Stats   []*instrumentation.StatsEntry
			}{yr, rt}
		}
		b, err := yaml.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("marshaling validation yaml results: %w", err)
		}
		return string(b), nil
	default:
		var b strings.Builder
		for _, r := range results {
			o := r.ViolatingObject
			name := o.GetName()
			if ns := o.GetNamespace(); ns != "" {
				name = ns + "/" + name
			}
			fmt.Fprintf(&b, "%s/%s %s: [%q] Message: %q\n", o.GetAPIVersion(), o.GetKind(), name, r.Constraint.GetName(), r.Msg)
			if r.Trace != nil {
				fmt.Fprintf(&b, "Trace: %v", *r.Trace)
			}
		}
		return b.String(), nil
	}
}

// toGatorYAML converts results to gator's YAML shape, passing values
// through JSON as gator does (so the object's numbers are JSON's).
func toGatorYAML(results []*gatorResult) ([]*gatorYAMLResult, error) {
	var out []*gatorYAMLResult
	for _, r := range results {
		y := &gatorYAMLResult{
			Result: gatorYAMLFrameworkResult{
				Target:                   r.Target,
				Msg:                      r.Msg,
				EnforcementAction:        r.EnforcementAction,
				ScopedEnforcementActions: r.ScopedActions,
			},
			Trace: r.Trace,
		}
		if err := jsonRoundTrip(r.Metadata, &y.Result.Metadata); err != nil {
			return nil, err
		}
		if err := jsonRoundTrip(r.ViolatingObject.Object, &y.ViolatingObject); err != nil {
			return nil, err
		}
		if r.Constraint != nil {
			b, err := r.Constraint.MarshalJSON()
			if err != nil {
				return nil, fmt.Errorf("pre-marshaling results to json: %w", err)
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(b); err != nil {
				return nil, fmt.Errorf("pre-unmarshaling results from json: %w", err)
			}
			y.Result.Constraint = &yamlObjectOnly{Object: u.Object}
		}
		out = append(out, y)
	}
	return out, nil
}

func jsonRoundTrip(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("pre-marshaling results to json: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("pre-unmarshaling results from json: %w", err)
	}
	return nil
}
