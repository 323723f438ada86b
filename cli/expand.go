package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/internal/manifest"
)

func newExpandCmd() *cobra.Command {
	var (
		files, images []string
		format        string
		outputFile    string
		plainHTTP     bool
		tempDir       string
	)
	cmd := &cobra.Command{
		Use:   "expand",
		Short: "expand allow for testing generator resource expansion configs by expanding a generator resource and outputting the resultant resource(s)",
		Long: `Expand every object given with the ExpansionTemplates given, as gator expand does,
and print the resultant objects: a Deployment's Pod, a CronJob's Job and that
Job's Pod. Input is every -n/--filename file or directory (.yaml, .yml, .json)
and standard input whenever it is not a terminal. A resultant is named
<parent>-<kind>, in its parent's namespace, owned by its parent.

Mutators given (Assign, AssignMetadata, ModifySet, AssignImage) apply as in
gator expand: to every object first, with source Original, then to every
resultant, with source Generated, so that match.source chooses between
them; both as outside admission, so only mutators for every operation
apply. Namespaces given are read as they are, for namespaceSelector and
fromMetadata.

As in gator expand, -n is --filename and -f is --format. OCI image inputs
(gator's -i/--image) are not supported.

The exit status is 1 on any error: input that cannot be read, an
ExpansionTemplate that is invalid or forms a cycle, an object without its
template's templateSource field, a mutator that does not compile or
conflicts with another, a mutation that fails.`,
		Example: `# expand resources in a manifest
portcullis expand --filename="manifest.yaml"

# expand a directory
portcullis expand --filename="config-and-policies/"

# Use multiple inputs
portcullis expand --filename="manifest.yaml" --filename="templates-and-constraints/"

# Output JSON to file
portcullis expand --filename="manifest.yaml" --format=json --outputfile=results.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stderr := cmd.ErrOrStderr()
			if format != "" && format != "json" && format != "yaml" {
				return fatalf(stderr, "unrecognized value for format flag: %s (-f is --format, json or yaml, as in gator expand; give files with -n/--filename)", format)
			}
			if len(images) > 0 {
				return fatalf(stderr, "reading: pulling image: OCI image inputs (-i/--image) are not supported by portcullis expand; pull the image and give its files with -n")
			}
			inputs, err := readTestInputs(files, cmd.InOrStdin())
			if err != nil {
				return fatalf(stderr, "reading: %v", err)
			}
			if len(inputs) == 0 {
				return fatalf(stderr, "no input data identified")
			}
			docs := make([]manifest.Doc, len(inputs))
			for i, in := range inputs {
				docs[i] = in.Doc
			}
			resultants, err := expandAll(cmd, docs)
			if err != nil {
				return fatalf(stderr, "error expanding resources: %v", err)
			}
			out, err := formatResources(resultants, format)
			if err != nil {
				return fatalf(stderr, "%v", err)
			}
			if outputFile == "" {
				fmt.Fprintln(cmd.OutOrStdout(), out)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Writing output to file: %s\n", outputFile)
			if err := os.WriteFile(outputFile, []byte(out), 0o644); err != nil {
				return fatalf(stderr, "error creating file at path %s: %v", outputFile, err)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "n", nil, "a file or directory containing Kubernetes resources.  Can be specified multiple times.")
	cmd.Flags().StringVarP(&format, "format", "f", "", "Output format.  One of: json|yaml.")
	cmd.Flags().StringVarP(&outputFile, "outputfile", "o", "", "Output file path. If the file already exists, it will be overwritten.")
	cmd.Flags().StringArrayVarP(&images, "image", "i", nil, "not supported: gator's OCI image input; portcullis expand refuses it (give the image's files with -n)")
	cmd.Flags().BoolVar(&plainHTTP, "plain-http", false, "accepted for gator compatibility; unused, as OCI images are not supported")
	cmd.Flags().StringVarP(&tempDir, "tempdir", "d", "", "accepted for gator compatibility; unused, as OCI images are not supported")
	return cmd
}

// expandAll expands every object with the ExpansionTemplates among docs,
// as gator expand does (every object may be a generator), and returns the
// resultants sorted as gator sorts them: by name, apiVersion and kind,
// descending.
func expandAll(cmd *cobra.Command, docs []manifest.Doc) ([]*unstructured.Unstructured, error) {
	ctx := cmd.Context()
	// The mutators given mutate every object first (source Original), then
	// the resultants (source Generated), both with no operation, as gator
	// expand does.
	objs, off, err := splitMutators(docs)
	if err != nil {
		return nil, err
	}
	sys, err := loadExpansion(objs, off.ForExpansion(), cmd.ErrOrStderr())
	if err != nil || sys == nil {
		return nil, err
	}
	if err := mutateAll(ctx, off, objs, true); err != nil {
		return nil, err
	}
	namespaces := givenNamespaces{}
	for _, d := range objs {
		if err := namespaces.add(d.Object, d.Source); err != nil {
			return nil, err
		}
	}
	var out []*unstructured.Unstructured
	for _, d := range objs {
		res, err := sys.Expand(ctx, d.Object, reviewNamespace(d.Object, namespaces))
		if err != nil {
			return nil, fmt.Errorf("error expanding resource %s (%s): %w", d.Object.GetName(), d.Source, err)
		}
		for _, r := range res {
			out = append(out, r.Object)
		}
	}
	key := func(o *unstructured.Unstructured) string { return o.GetName() + o.GetAPIVersion() + o.GetKind() }
	sort.SliceStable(out, func(i, j int) bool { return key(out[i]) > key(out[j]) })
	return out, nil
}

// formatResources renders resources as gator expand does: YAML (the
// default) or JSON indented with four spaces, joined by "---" lines.
func formatResources(resources []*unstructured.Unstructured, format string) (string, error) {
	parts := make([]string, len(resources))
	for i, r := range resources {
		var (
			b   []byte
			err error
		)
		if format == "json" {
			b, err = json.MarshalIndent(r, "", "    ")
		} else {
			b, err = yaml.Marshal(r.Object)
		}
		if err != nil {
			return "", fmt.Errorf("marshaling %s %q: %w", r.GetKind(), r.GetName(), err)
		}
		parts[i] = string(b)
	}
	return strings.Join(parts, "---\n"), nil
}
