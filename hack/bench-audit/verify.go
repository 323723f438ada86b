package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/gklibrary"
	"github.com/portcullis-dev/portcullis/internal/gklibrary/libengine"
)

// reviewOffline reviews every listable object with a fresh engine holding
// the library's templates and constraints, independently of the audit
// package, and counts the violations per constraint.
func reviewOffline(ctx context.Context, cfg *rest.Config, policies []gklibrary.Policy) (map[string]int, int, error) {
	eng, _, err := libengine.New(ctx, engine.Options{}, policies)
	if err != nil {
		return nil, 0, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, 0, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, 0, err
	}
	lists, err := disc.ServerPreferredResources()
	if err != nil {
		return nil, 0, fmt.Errorf("discovery: %w", err)
	}
	namespaces := map[string]*corev1.Namespace{}
	nsList, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, 0, err
	}
	for i := range nsList.Items {
		ns, err := engine.NamespaceFromUnstructured(&nsList.Items[i])
		if err != nil {
			return nil, 0, err
		}
		namespaces[ns.Name] = ns
	}

	var (
		mu       sync.Mutex
		counts   = map[string]int{}
		reviewed int
		firstErr error
	)
	objs := make(chan *unstructured.Unstructured, 100)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for o := range objs {
				resp, err := eng.Review(ctx, &engine.Object{Object: o, Namespace: namespaces[o.GetNamespace()], Source: engine.SourceOriginal}, engine.EnforcementPointAudit)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				reviewed++
				if resp != nil {
					for _, v := range resp.Violations {
						counts[v.Constraint.GetKind()+"/"+v.Constraint.GetName()]++
					}
				}
				mu.Unlock()
			}
		})
	}
	var listErr error
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !hasList(r.Verbs) {
				continue
			}
			opts := metav1.ListOptions{Limit: 1000}
			for listErr == nil {
				list, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, opts)
				if err != nil {
					listErr = fmt.Errorf("listing %s: %w", gv.WithResource(r.Name), err)
					break
				}
				for i := range list.Items {
					objs <- &list.Items[i]
				}
				if list.GetContinue() == "" {
					break
				}
				opts.Continue = list.GetContinue()
			}
		}
	}
	close(objs)
	wg.Wait()
	if listErr != nil {
		return nil, 0, listErr
	}
	if firstErr != nil {
		return nil, 0, fmt.Errorf("offline review: %w", firstErr)
	}
	return counts, reviewed, nil
}

func hasList(verbs metav1.Verbs) bool {
	return slices.Contains(verbs, "list")
}
