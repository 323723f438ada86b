package engine

import "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"

// matchSchema is the OpenAPI schema of a constraint's spec.match, with the
// same fields and patterns as Gatekeeper's, so existing constraints validate
// unchanged.
func matchSchema() apiextensions.JSONSchemaProps {
	str := apiextensions.JSONSchemaProps{Type: "string"}
	strList := apiextensions.JSONSchemaProps{Type: "array", Items: &apiextensions.JSONSchemaPropsOrArray{Schema: &str}}
	wildcard := apiextensions.JSONSchemaProps{
		Type:        "string",
		Pattern:     `^\*?[-:a-z0-9]*\*?$`,
		Description: `A name glob: "kube-*" (prefix), "*-system" (suffix) or "*x*" (contains).`,
	}
	wildcardList := apiextensions.JSONSchemaProps{Type: "array", Items: &apiextensions.JSONSchemaPropsOrArray{Schema: &wildcard}}
	atomic := "atomic"
	selector := apiextensions.JSONSchemaProps{
		Type:     "object",
		XMapType: &atomic,
		Properties: map[string]apiextensions.JSONSchemaProps{
			"matchLabels": {
				Type:                 "object",
				AdditionalProperties: &apiextensions.JSONSchemaPropsOrBool{Allows: true, Schema: &str},
			},
			"matchExpressions": {
				Type:      "array",
				XListType: &atomic,
				Items: &apiextensions.JSONSchemaPropsOrArray{Schema: &apiextensions.JSONSchemaProps{
					Type:     "object",
					Required: []string{"key", "operator"},
					Properties: map[string]apiextensions.JSONSchemaProps{
						"key":      str,
						"operator": str,
						"values":   {Type: "array", XListType: &atomic, Items: &apiextensions.JSONSchemaPropsOrArray{Schema: &str}},
					},
				}},
			},
		},
	}
	enum := func(vals ...string) []apiextensions.JSON {
		out := make([]apiextensions.JSON, len(vals))
		for i, v := range vals {
			out[i] = v
		}
		return out
	}
	return apiextensions.JSONSchemaProps{
		Type:        "object",
		Description: "Match selects the objects the constraint applies to. Criteria are ANDed; an empty match selects everything.",
		Properties: map[string]apiextensions.JSONSchemaProps{
			"kinds": {
				Type: "array",
				Items: &apiextensions.JSONSchemaPropsOrArray{Schema: &apiextensions.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensions.JSONSchemaProps{
						"apiGroups": strList,
						"kinds":     strList,
					},
				}},
			},
			"scope":              {Type: "string", Description: "`*`, `Cluster` or `Namespaced` (default `*`)."},
			"namespaces":         wildcardList,
			"excludedNamespaces": wildcardList,
			"labelSelector":      selector,
			"namespaceSelector":  selector,
			"name":               wildcard,
			"source":             {Type: "string", Enum: enum(SourceAll, SourceGenerated, SourceOriginal)},
			"processes": {
				Type: "array",
				Items: &apiextensions.JSONSchemaPropsOrArray{Schema: &apiextensions.JSONSchemaProps{
					Type: "string", Enum: enum(ProcessAudit, ProcessWebhook, ProcessSync, "mutation-webhook", ProcessAll),
				}},
			},
		},
	}
}
