package vap

import (
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
)

// Names of the match conditions and variables a policy gets besides the
// template's, Gatekeeper's (they start with the prefix templates may not
// use).
const (
	ConditionExcludedNamespaces       = "gatekeeper_internal_match_excluded_namespaces"
	ConditionNamespaces               = "gatekeeper_internal_match_namespaces"
	ConditionName                     = "gatekeeper_internal_match_name"
	ConditionKinds                    = "gatekeeper_internal_match_kinds"
	ConditionScope                    = "gatekeeper_internal_match_scope"
	ConditionGlobalExcludedNamespaces = "gatekeeper_internal_match_global_excluded_namespaces"
	ConditionGlobalExemptedNamespaces = "gatekeeper_internal_match_global_exempted_namespaces"
)

// The CEL below reads the constraint (params) and the request. A wildcard
// of a constraint's match (a namespace or name with a leading or trailing
// *) becomes a regular expression by turning each * into .*: the
// constraint CRD's schema allows no other character a regular expression
// reads specially. Each condition holds, as in Gatekeeper, when either
// the object or the old object matches (one is null on a CREATE or a
// DELETE).

// matchField is true when the constraint has no spec.match.<field>, else
// cond.
func matchField(field, cond string) string {
	return "!has(params.spec) || !has(params.spec.match) || !has(params.spec.match." + field + ") ||\n(" + cond + ")"
}

// globMatches is true when value matches the wildcard in the variable glob.
func globMatches(value, glob string) string {
	return "string(" + value + ").matches('^' + string(" + glob + ").replace('*', '.*') + '$')"
}

// eitherObject is true when cond holds of o, the object or the old one.
func eitherObject(cond string) string {
	return "[object, oldObject].exists(o, o != null && (" + cond + "))"
}

// clusterScoped is true of an object without a namespace: a Namespace,
// or any other cluster-scoped object.
const clusterScoped = "!has(o.metadata.namespace) || o.metadata.namespace == ''"

var (
	matchKinds = matchField("kinds", `params.spec.match.kinds.exists(k,
  (!has(k.kinds) || size(k.kinds) == 0 || '*' in k.kinds || request.kind.kind in k.kinds) &&
  (!has(k.apiGroups) || size(k.apiGroups) == 0 || '*' in k.apiGroups || request.kind.group in k.apiGroups))`)

	// matchScope: Namespaced matches objects in a namespace, Cluster the
	// others (Namespaces among them), * or nothing both.
	matchScope = matchField("scope", `params.spec.match.scope == '*' ||
`+eitherObject(`(params.spec.match.scope == 'Cluster') == (`+clusterScoped+`)`))

	matchName = matchField("name", eitherObject(
		`(has(o.metadata.generateName) && o.metadata.generateName != '' && string(params.spec.match.name).endsWith('*') && `+
			globMatches("o.metadata.generateName", "params.spec.match.name")+`) ||
  (has(o.metadata.name) && `+globMatches("o.metadata.name", "params.spec.match.name")+`)`))

	// A Namespace is judged by its own name, as the webhook judges it; other
	// cluster-scoped objects are not filtered by namespaces.
	matchNamespaces = matchField("namespaces", eitherObject(`[`+judgedNamespace+`].all(ns, ns == '' ||
  params.spec.match.namespaces.exists(g, `+globMatches("ns", "g")+`))`))

	matchExcludedNamespaces = matchField("excludedNamespaces", eitherObject(`[`+judgedNamespace+`].all(ns, ns == '' ||
  !params.spec.match.excludedNamespaces.exists(g, `+globMatches("ns", "g")+`))`))
)

// judgedNamespace is the namespace o is judged by: a Namespace's own name,
// else its namespace, ” for other cluster-scoped objects.
const judgedNamespace = `has(o.kind) && o.kind == 'Namespace' && has(o.metadata.name) ? o.metadata.name :
  has(o.metadata.namespace) ? o.metadata.namespace : ''`

// constraintMatchConditions translate a constraint's spec.match into CEL:
// kinds, scope, name, namespaces and excludedNamespaces. The binding
// carries labelSelector and namespaceSelector.
func constraintMatchConditions() []admissionregistrationv1.MatchCondition {
	return []admissionregistrationv1.MatchCondition{
		{Name: ConditionExcludedNamespaces, Expression: matchExcludedNamespaces},
		{Name: ConditionNamespaces, Expression: matchNamespaces},
		{Name: ConditionName, Expression: matchName},
		{Name: ConditionKinds, Expression: matchKinds},
		{Name: ConditionScope, Expression: matchScope},
	}
}

// celList is a CEL list of string literals.
func celList(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// globalExcluded leaves out objects in the namespaces the Config excludes
// from the webhook, and those Namespaces themselves.
func globalExcluded(namespaces []string) admissionregistrationv1.MatchCondition {
	list := celList(namespaces)
	return admissionregistrationv1.MatchCondition{
		Name: ConditionGlobalExcludedNamespaces,
		Expression: eitherObject(`has(o.kind) && o.kind == 'Namespace' && has(o.metadata.name) ?
  !` + list + `.exists(g, ` + globMatches("o.metadata.name", "g") + `) :
  ` + clusterScoped + ` || !` + list + `.exists(g, ` + globMatches("o.metadata.namespace", "g") + `)`),
	}
}

// globalExempted leaves out objects in the exempt namespaces and, as the
// webhook does, those exempt Namespaces that carry the
// admission.gatekeeper.sh/ignore label.
func globalExempted(namespaces []string) admissionregistrationv1.MatchCondition {
	list := celList(namespaces)
	return admissionregistrationv1.MatchCondition{
		Name: ConditionGlobalExemptedNamespaces,
		Expression: eitherObject(`has(o.kind) && o.kind == 'Namespace' && has(o.metadata.name) ?
  !` + list + `.exists(g, ` + globMatches("o.metadata.name", "g") + ` && has(o.metadata.labels) && '` + IgnoreLabel + `' in o.metadata.labels) :
  ` + clusterScoped + ` || !` + list + `.exists(g, ` + globMatches("o.metadata.namespace", "g") + `)`),
	}
}

// IgnoreLabel exempts a Namespace from the webhook (when it is one of the
// exempt namespaces), as in Gatekeeper.
const IgnoreLabel = "admission.gatekeeper.sh/ignore"

// builtinVariables come before the template's, the engine's own:
// variables.anyObject is the object, or the old one on a DELETE, and
// variables.params the constraint's spec.parameters or null.
func builtinVariables() []admissionregistrationv1.Variable {
	var out []admissionregistrationv1.Variable
	for _, v := range celdriver.BuiltinVariables() {
		out = append(out, admissionregistrationv1.Variable{Name: v.Name, Expression: v.Expression})
	}
	return out
}
