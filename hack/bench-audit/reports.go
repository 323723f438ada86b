package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/portcullis-dev/portcullis/api/wgpolicyk8s/v1alpha2"
	"github.com/portcullis-dev/portcullis/audit/policyreport"
	"github.com/portcullis-dev/portcullis/internal/gklibrary"
)

// verifyReports checks the reports the audit wrote: one per namespace
// that has results, summaries that count their results, and for each
// constraint as many results that are not pass as its totalViolations.
func verifyReports(ctx context.Context, cfg *rest.Config, c config, policies []gklibrary.Policy, totals map[string]int64) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	found := map[string]int64{}
	perNamespace := map[string]int{}
	var reports, results, pass int
	for _, res := range []string{"policyreports", "clusterpolicyreports"} {
		opts := metav1.ListOptions{LabelSelector: policyreport.LabelManagedBy + "=" + policyreport.ManagedBy, Limit: 50}
		for {
			list, err := dyn.Resource(v1alpha2.GroupVersion.WithResource(res)).List(ctx, opts)
			if err != nil {
				return fmt.Errorf("listing %s: %w", res, err)
			}
			for i := range list.Items {
				var r v1alpha2.PolicyReport
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(list.Items[i].Object, &r); err != nil {
					return fmt.Errorf("decoding %s %s/%s: %w", res, r.Namespace, r.Name, err)
				}
				reports++
				perNamespace[r.Namespace]++
				var sum v1alpha2.PolicyReportSummary
				for _, result := range r.Results {
					results++
					switch result.Result {
					case v1alpha2.ResultPass:
						sum.Pass++
						pass++
						continue
					case v1alpha2.ResultFail:
						sum.Fail++
					case v1alpha2.ResultWarn:
						sum.Warn++
					case v1alpha2.ResultSkip:
						sum.Skip++
					case v1alpha2.ResultError:
						sum.Error++
					}
					found[result.Policy]++
				}
				if sum != r.Summary {
					return fmt.Errorf("%s %s/%s: summary %+v, its results count %+v", res, r.Namespace, r.Name, r.Summary, sum)
				}
			}
			if list.GetContinue() == "" {
				break
			}
			opts.Continue = list.GetContinue()
		}
	}
	var bad []string
	for _, p := range policies {
		if found[key(p)] != totals[key(p)] {
			bad = append(bad, fmt.Sprintf("%s: %d results in the reports, status.totalViolations %d", key(p), found[key(p)], totals[key(p)]))
		}
	}
	for i := range c.namespaces {
		ns := fmt.Sprintf("bench-%02d", i)
		if perNamespace[ns] == 0 {
			bad = append(bad, "namespace "+ns+" has no report")
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("the reports disagree with the statuses:\n  %s", strings.Join(bad, "\n  "))
	}
	fmt.Printf("Verified: %d reports in %d namespaces and the cluster hold %d results (%d pass); for all %d constraints, the results equal status.totalViolations\n",
		reports, len(perNamespace)-min(1, perNamespace[""]), results, pass, len(policies))
	return nil
}
