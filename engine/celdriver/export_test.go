package celdriver

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	admissioncel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
)

// Decision is a decision as the tests compare them: "deny: message",
// "error: message" (denying or not under the failure policy) or "admit".
type Decision = string

// Decisions judges each constraint twice: with the driver's evaluator, and
// with the apiserver's own ValidatingAdmissionPolicy validator built from
// the same compiled source (validating.NewValidator, which converts the
// review for every constraint and evaluates every message expression in
// an activation of its own). It returns both, one line per decision.
func Decisions(ctx context.Context, ct *templates.ConstraintTemplate, constraints []*unstructured.Unstructured, review any, budget int64) (ours, apiserver []Decision, err error) {
	c, err := compileTemplate(ct, FailurePolicyFail)
	if err != nil {
		return nil, nil, err
	}
	attrs, err := attributes(review)
	if err != nil {
		return nil, nil, err
	}
	ns, err := reviewNamespace(review, nil)
	if err != nil {
		return nil, nil, err
	}
	in, err := newReviewVars(attrs, ns)
	if err != nil {
		return nil, nil, err
	}
	validations := make([]admissioncel.ExpressionAccessor, len(c.validations))
	messages := make([]admissioncel.ExpressionAccessor, len(c.messages))
	for i := range c.validations {
		validations[i] = c.validations[i].ExpressionAccessor
		if c.messages[i].Program != nil {
			messages[i] = c.messages[i].ExpressionAccessor
		}
	}
	validator := validating.NewValidator(
		c.cc.CompileCondition(validations, withoutParams, mode),
		c.matcher,
		c.cc.CompileCondition(nil, withoutParams, mode),
		c.cc.CompileCondition(messages, withoutParams, mode),
		&c.policy, nil)
	for _, con := range constraints {
		for _, d := range c.validate(ctx, in, con, budget) {
			ours = append(ours, fmt.Sprintf("%s %s: %s: %s", con.GetName(), d.evaluation, denies(d.deny), d.message))
		}
		res := validator.Validate(ctx, attrs.GetResource(), attrs, con, ns, budget, nil)
		for _, d := range res.Decisions {
			apiserver = append(apiserver, fmt.Sprintf("%s %s: %s: %s", con.GetName(), d.Evaluation, denies(d.Action == validating.ActionDeny), d.Message))
		}
	}
	return ours, apiserver, nil
}

func denies(deny bool) string {
	if deny {
		return "denies"
	}
	return "admits"
}

// SharedVariables names the variables of a template whose values are
// shared by all constraints in a review.
func SharedVariables(ct *templates.ConstraintTemplate) ([]string, error) {
	c, err := compileTemplate(ct, FailurePolicyFail)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range c.vars {
		if v.shareKey != "" {
			out = append(out, v.name)
		}
	}
	return out, nil
}

// Reads describes what a template's expressions read, for the result
// cache: one path a line, or why it is not cached.
func Reads(ct *templates.ConstraintTemplate) ([]string, error) {
	c, err := compileTemplate(ct, FailurePolicyFail)
	if err != nil {
		return nil, err
	}
	if !c.reads.cacheable {
		return []string{"not cached: " + c.reads.why}, nil
	}
	out := make([]string, len(c.reads.paths))
	for i, p := range c.reads.paths {
		out[i] = p.String()
	}
	return out, nil
}
