package expansion

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine"
)

// BenchmarkReviewer measures a review through Reviewer: a Deployment
// judged alone (no ExpansionTemplate), a Deployment judged with its Pod,
// and a Pod when a template exists for Deployments only (the cost of
// expansion for kinds it does not apply to). Objects are distinct (no
// result cache hits) except in the cached cases.
func BenchmarkReviewer(b *testing.B) {
	eng := newEngine(b, engine.Options{}, ownerConstraint("pods-need-owner", "", ""))
	withTemplate := system(b, nil, expandDeployments)
	cases := []struct {
		name   string
		object string
		sys    *System
		cached bool
	}{
		{"deployment/no-template", deployment, nil, false},
		{"deployment/expanded", deployment, withTemplate, false},
		{"deployment/expanded-cached", deployment, withTemplate, true},
		{"pod/template-for-other-kinds", pod, withTemplate, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := &Reviewer{Engine: eng, System: c.sys}
			base := parse(b, c.object)
			objs := make([]*unstructured.Unstructured, b.N)
			for i := range objs {
				if c.cached && i > 0 {
					objs[i] = objs[0]
					continue
				}
				o := base.DeepCopy()
				o.SetName(fmt.Sprintf("%s-%d", o.GetName(), i))
				objs[i] = o
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				resp, err := r.Review(ctx, &engine.Object{Object: objs[i], Source: engine.SourceOriginal}, engine.EnforcementPointWebhook)
				if err != nil || (c.sys != nil || c.object == pod) != (len(resp.Violations) == 1) {
					b.Fatalf("Review = %v, %v", resp, err)
				}
			}
		})
	}
}
