package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/mutation"
)

func newMutateCmd() *cobra.Command {
	var (
		files     []string
		output    string
		diff      bool
		namespace string
	)
	cmd := &cobra.Command{
		Use:   "mutate -f FILE|DIR ...",
		Short: "Apply the mutators given to the objects given, as the mutating webhook would",
		Long: `Read mutators (Assign, AssignMetadata, ModifySet, AssignImage) and objects from
every -f file or directory (- reads standard input), apply every mutator to
every object as the mutating webhook would on CREATE, and print every object
given other than the mutators, mutated or not, in input order.

Namespaces given are mutated first, then read for namespaceSelector and
fromMetadata by the objects in them; an object in a namespace not given is
taken to be in one without labels. An object without metadata.namespace is
mutated as if in --namespace (default "default", where kubectl apply would
create it), unless its kind is one of Kubernetes' cluster-scoped kinds; the
namespace is not added to what is printed. Templates, constraints and
Gatekeeper's other resources are printed as they are.

-o yaml (the default) prints one YAML document per object, -o json one JSON
object per object; --diff prints instead a unified diff of each object the
mutators changed. A mutator that does not compile, two that conflict, or a
mutation that fails (a set that never converges, a location that does not fit
the object) is an error naming the file and object. The exit status is 0 on
success and 1 on an input error.`,
		Example: `# What would the mutators do to this Pod?
portcullis mutate -f mutators/ -f pod.yaml

# Only what changes
portcullis mutate -f mutators/ -f manifests/ --diff

# From standard input, as JSON
kubectl get pod web -o yaml | portcullis mutate -f mutators/ -f - -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stderr := cmd.ErrOrStderr()
			output = strings.ToLower(output)
			if output != "yaml" && output != "json" {
				return fatalf(stderr, "-o: %q is not yaml or json", output)
			}
			if len(files) == 0 {
				return fatalf(stderr, "no input: give at least one -f FILE, DIR or -")
			}
			var docs []manifest.Doc
			for _, p := range files {
				d, err := manifest.ReadPath(p, cmd.InOrStdin())
				if err != nil {
					return fatalf(stderr, "reading: %v", err)
				}
				docs = append(docs, d...)
			}
			if len(docs) == 0 {
				// As portcullis test and expand, and gator, say it.
				return fatalf(stderr, "no input data identified")
			}
			out, err := mutateDocs(cmd, docs, output, diff, namespace)
			if err != nil {
				return fatalf(stderr, "%v", err)
			}
			_, err = io.WriteString(cmd.OutOrStdout(), out)
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "a file or directory of mutators and objects; repeatable; - reads standard input")
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	cmd.Flags().BoolVar(&diff, "diff", false, "print a unified diff of each object changed instead of the objects")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "the namespace of objects without metadata.namespace (but those of cluster-scoped kinds)")
	return cmd
}

// mutateDocs applies the mutators among docs to the other docs and renders
// them.
func mutateDocs(cmd *cobra.Command, docs []manifest.Doc, output string, diff bool, namespace string) (string, error) {
	ctx := cmd.Context()
	off, objects, err := loadOffline(docs)
	if err != nil {
		return "", err
	}
	off.DefaultNamespace = namespace
	originals := make([]*unstructured.Unstructured, len(objects))
	for i, d := range objects {
		originals[i] = d.Object.DeepCopy()
	}
	if err := mutateAll(ctx, off, objects, false); err != nil {
		return "", err
	}
	var b strings.Builder
	for i, d := range objects {
		if diff {
			source := d.Source
			if originals[i].GetNamespace() == "" {
				if ns := off.NamespaceFor(originals[i]); ns != "" {
					source += ", mutated in namespace " + ns
				}
			}
			text, err := objectDiff(originals[i], d.Object, source)
			if err != nil {
				return "", err
			}
			b.WriteString(text)
			continue
		}
		text, err := render(d.Object, output)
		if err != nil {
			return "", fmt.Errorf("%s: %w", d.Source, err)
		}
		if output == "yaml" && i > 0 {
			b.WriteString("---\n")
		}
		b.WriteString(text)
	}
	return b.String(), nil
}

// loadOffline loads the mutators among docs, and returns the other docs.
func loadOffline(docs []manifest.Doc) (*mutation.Offline, []manifest.Doc, error) {
	off := mutation.NewOffline()
	var rest []manifest.Doc
	for _, d := range docs {
		if d.Object.GroupVersionKind().Group != mutationsv1.Group {
			rest = append(rest, d)
			continue
		}
		if err := off.AddMutator(d.Object); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", d.Source, err)
		}
	}
	return off, rest, nil
}

// mutateAll mutates the Namespaces among docs first, then the rest, in
// place, as the mutating webhook would on CREATE. asExpand mutates as gator
// expand does before it expands an object: the Namespaces are read as they
// are, the rest mutated with source Original and no operation (only
// mutators for every operation apply).
func mutateAll(ctx context.Context, off *mutation.Offline, docs []manifest.Doc, asExpand bool) error {
	for _, d := range docs {
		switch {
		case !engine.IsNamespace(d.Object):
		case asExpand:
			off.KeepNamespace(d.Object)
		default:
			if _, err := off.AddNamespace(ctx, d.Object); err != nil {
				return fmt.Errorf("%s: %w", d.Source, err)
			}
		}
	}
	mutate := off.Mutate
	if asExpand {
		m := off.ForExpansion()
		mutate = func(ctx context.Context, obj *unstructured.Unstructured) (bool, error) {
			if mutation.IsGatekeeperGroup(obj.GroupVersionKind().Group) {
				return false, nil
			}
			return m.Mutate(ctx, obj, nil, engine.SourceOriginal)
		}
	}
	for _, d := range docs {
		if engine.IsNamespace(d.Object) {
			continue
		}
		if _, err := mutate(ctx, d.Object); err != nil {
			return fmt.Errorf("%s: %w", d.Source, err)
		}
	}
	return nil
}

// render prints one object as YAML or indented JSON.
func render(obj *unstructured.Unstructured, output string) (string, error) {
	if output == "json" {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(obj.Object); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	out, err := yaml.Marshal(obj.Object)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// objectDiff is a unified diff of an object's YAML before and after, ""
// when it did not change.
func objectDiff(before, after *unstructured.Unstructured, source string) (string, error) {
	a, err := render(before, "yaml")
	if err != nil {
		return "", err
	}
	b, err := render(after, "yaml")
	if err != nil {
		return "", err
	}
	if a == b {
		return "", nil
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: lines(a), B: lines(b),
		FromFile: diffName(before) + " (" + source + ")", ToFile: diffName(after) + " (mutated)", Context: 3,
	})
}

// diffName names obj in a diff header: kind/namespace/name, or kind/name.
// Each side names its own object: a mutator may change the kind.
func diffName(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return obj.GetKind() + "/" + ns + "/" + obj.GetName()
	}
	return obj.GetKind() + "/" + obj.GetName()
}

// lines splits text after each newline, with no empty last line.
func lines(text string) []string {
	l := strings.SplitAfter(text, "\n")
	if len(l) > 0 && l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}
