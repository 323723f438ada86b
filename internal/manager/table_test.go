package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"github.com/portcullis-dev/portcullis/controllers"
)

func isNoMatch(err error) bool { return meta.IsNoMatchError(err) }

// checkConstraintsTable does what `kubectl get constraints` does, without
// kubectl: it finds every resource in the category "constraints" through
// discovery, lists each as a server-side Table (the CRD's printer columns)
// and looks for the constraint name with its enforcement action.
func checkConstraintsTable(t *testing.T, name, action string) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "`get constraints` to list "+name, func(ctx context.Context) (bool, error) {
		lists, err := dc.ServerPreferredResources()
		if err != nil {
			return false, err
		}
		for _, l := range lists {
			gv, _ := schema.ParseGroupVersion(l.GroupVersion)
			for _, r := range l.APIResources {
				if !slices.Contains(r.Categories, "constraints") {
					continue
				}
				if gv.Group != controllers.ConstraintGroup {
					return false, fmt.Errorf("resource %s/%s in the constraints category", l.GroupVersion, r.Name)
				}
				raw, err := dc.RESTClient().Get().AbsPath("/apis", l.GroupVersion, r.Name).
					SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
				if err != nil {
					return false, err
				}
				var table metav1.Table
				if err := json.Unmarshal(raw, &table); err != nil {
					return false, err
				}
				var cols []string
				for _, c := range table.ColumnDefinitions {
					cols = append(cols, c.Name)
				}
				if !slices.Contains(cols, "enforcement-action") || !slices.Contains(cols, "total-violations") {
					return false, fmt.Errorf("%s columns %v, want enforcement-action and total-violations", r.Name, cols)
				}
				for _, row := range table.Rows {
					if len(row.Cells) >= 2 && row.Cells[0] == name && row.Cells[1] == action {
						return true, nil
					}
				}
			}
		}
		return false, fmt.Errorf("no constraint %s with action %s in the constraints category", name, action)
	})
}
