package datasync

import (
	"errors"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	syncsetv1alpha1 "github.com/portcullis-dev/portcullis/api/syncset/v1alpha1"
)

var (
	podGVK = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	nsGVK  = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
	npGVK  = schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}
)

func config(entries ...configv1alpha1.SyncOnlyEntry) *configv1alpha1.Config {
	return &configv1alpha1.Config{
		ObjectMeta: metav1.ObjectMeta{Namespace: "portcullis-system", Name: "config"},
		Spec:       configv1alpha1.ConfigSpec{Sync: configv1alpha1.Sync{SyncOnly: entries}},
	}
}

func syncSet(name string, gvks ...syncsetv1alpha1.GVKEntry) syncsetv1alpha1.SyncSet {
	return syncsetv1alpha1.SyncSet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: syncsetv1alpha1.SyncSetSpec{GVKs: gvks}}
}

func TestDesired(t *testing.T) {
	pod := configv1alpha1.SyncOnlyEntry{Version: "v1", Kind: "Pod"}
	tests := []struct {
		name     string
		cfg      *configv1alpha1.Config
		sets     []syncsetv1alpha1.SyncSet
		kinds    []schema.GroupVersionKind
		invalid  []schema.GroupVersionKind
		listedBy map[schema.GroupVersionKind][]string
	}{
		{name: "nothing"},
		{
			name:     "config only",
			cfg:      config(pod),
			kinds:    []schema.GroupVersionKind{podGVK},
			listedBy: map[schema.GroupVersionKind][]string{podGVK: {"Config portcullis-system/config"}},
		},
		{
			name: "union of the Config and the SyncSets, each kind once",
			cfg:  config(pod),
			sets: []syncsetv1alpha1.SyncSet{
				syncSet("a", syncsetv1alpha1.GVKEntry{Version: "v1", Kind: "Pod"}, syncsetv1alpha1.GVKEntry{Version: "v1", Kind: "Namespace"}),
				syncSet("b", syncsetv1alpha1.GVKEntry{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}),
			},
			kinds: []schema.GroupVersionKind{npGVK, nsGVK, podGVK},
			listedBy: map[schema.GroupVersionKind][]string{
				podGVK: {"Config portcullis-system/config", "SyncSet a"},
				nsGVK:  {"SyncSet a"},
				npGVK:  {"SyncSet b"},
			},
		},
		{
			name:    "entries without version or kind are invalid",
			cfg:     config(pod, configv1alpha1.SyncOnlyEntry{Kind: "Service"}),
			sets:    []syncsetv1alpha1.SyncSet{syncSet("a", syncsetv1alpha1.GVKEntry{Group: "apps", Version: "v1"})},
			kinds:   []schema.GroupVersionKind{podGVK},
			invalid: []schema.GroupVersionKind{{Kind: "Service"}, {Group: "apps", Version: "v1"}},
			listedBy: map[schema.GroupVersionKind][]string{
				podGVK:                         {"Config portcullis-system/config"},
				{Kind: "Service"}:              {"Config portcullis-system/config"},
				{Group: "apps", Version: "v1"}: {"SyncSet a"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := desired(tc.cfg, tc.sets)
			if !reflect.DeepEqual(d.kinds, tc.kinds) {
				t.Errorf("kinds = %v, want %v", d.kinds, tc.kinds)
			}
			if len(d.invalid) != len(tc.invalid) {
				t.Errorf("invalid = %v, want %v", d.invalid, tc.invalid)
			}
			for _, gvk := range tc.invalid {
				if err := d.invalid[gvk]; !errors.Is(err, errIncompleteEntry) {
					t.Errorf("invalid[%v] = %v, want %v", gvk, err, errIncompleteEntry)
				}
			}
			if len(tc.listedBy) > 0 && !reflect.DeepEqual(d.listedBy, tc.listedBy) {
				t.Errorf("listedBy = %v, want %v", d.listedBy, tc.listedBy)
			}
		})
	}
}

func TestDesiredExclusionsAndTraces(t *testing.T) {
	cfg := config()
	cfg.Spec.Match = []configv1alpha1.MatchEntry{
		{ExcludedNamespaces: []configv1alpha1.Wildcard{"kube-*"}, Processes: []configv1alpha1.Process{configv1alpha1.ProcessSync}},
	}
	cfg.Spec.Validation.Traces = []configv1alpha1.Trace{{User: "alice", Kind: configv1alpha1.GVK{Version: "v1", Kind: "Pod"}}}
	d := desired(cfg, nil)
	if !d.exclusions.Excludes(configv1alpha1.ProcessSync, "kube-system") {
		t.Errorf("kube-system not excluded from sync")
	}
	if len(d.traces) != 1 {
		t.Errorf("traces = %v, want the Config's", d.traces)
	}
	if d := desired(nil, nil); d.exclusions.Excludes(configv1alpha1.ProcessSync, "kube-system") || d.traces != nil {
		t.Errorf("without a Config: exclusions %v, traces %v, want none", d.exclusions, d.traces)
	}
}
