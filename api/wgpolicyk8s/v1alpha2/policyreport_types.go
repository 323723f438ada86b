package v1alpha2

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// These types give the prototype's schema field for field (names, JSON
// keys, optionality, enums), so that the CRDs generated from them accept
// what the prototype's CRDs, and Kyverno's copies of them, accept, and what
// Policy Reporter reads.

// PolicyReportSummary counts a report's results by outcome.
type PolicyReportSummary struct {
	// Pass counts the results whose policy requirements were met.
	// +optional
	Pass int `json:"pass"`

	// Fail counts the results whose policy requirements were not met.
	// +optional
	Fail int `json:"fail"`

	// Warn counts the results of unscored policies whose requirements were
	// not met.
	// +optional
	Warn int `json:"warn"`

	// Error counts the results of policies that could not be evaluated.
	// +optional
	Error int `json:"error"`

	// Skip counts the results of policies not selected for evaluation.
	// +optional
	Skip int `json:"skip"`
}

// PolicyResult is the outcome of a policy for a resource: pass (the
// requirements are met), fail (they are not), warn (they are not, and the
// policy is not scored), error (the policy could not be evaluated) or skip
// (the policy was not selected).
// +kubebuilder:validation:Enum=pass;fail;warn;error;skip
type PolicyResult string

// The outcomes of a result.
const (
	ResultPass  PolicyResult = "pass"
	ResultFail  PolicyResult = "fail"
	ResultWarn  PolicyResult = "warn"
	ResultError PolicyResult = "error"
	ResultSkip  PolicyResult = "skip"
)

// PolicyResultSeverity is how critical a result is: critical, high,
// medium, low or info.
// +kubebuilder:validation:Enum=critical;high;low;medium;info
type PolicyResultSeverity string

// The severities of a result.
const (
	SeverityCritical PolicyResultSeverity = "critical"
	SeverityHigh     PolicyResultSeverity = "high"
	SeverityMedium   PolicyResultSeverity = "medium"
	SeverityLow      PolicyResultSeverity = "low"
	SeverityInfo     PolicyResultSeverity = "info"
)

// PolicyReportResult is the outcome of one policy rule.
type PolicyReportResult struct {
	// Source names the policy engine that produced the result.
	// +optional
	Source string `json:"source"`

	// Policy names the policy.
	Policy string `json:"policy"`

	// Rule names the rule of the policy.
	// +optional
	Rule string `json:"rule,omitempty"`

	// Category is the policy's category.
	// +optional
	Category string `json:"category,omitempty"`

	// Severity is how critical the result is.
	// +optional
	Severity PolicyResultSeverity `json:"severity,omitempty"`

	// Timestamp is when the result was found.
	Timestamp metav1.Timestamp `json:"timestamp,omitempty"`

	// Result is the outcome.
	Result PolicyResult `json:"result,omitempty"`

	// Scored tells whether the result is scored.
	Scored bool `json:"scored,omitempty"`

	// Subjects are the resources the result is about.
	// +optional
	Subjects []corev1.ObjectReference `json:"resources,omitempty"`

	// SubjectSelector selects the resources the result is about, as an
	// alternative to Subjects; with neither, the result is about the
	// report's scope.
	// +optional
	SubjectSelector *metav1.LabelSelector `json:"resourceSelector,omitempty"`

	// Description is the result's message.
	Description string `json:"message,omitempty"`

	// Properties are more facts about the result.
	Properties map[string]string `json:"properties,omitempty"`
}

// PolicyReport holds the results of policies for the resources of one
// namespace.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=polr
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.scope.kind`,priority=1
// +kubebuilder:printcolumn:name="Name",type=string,JSONPath=`.scope.name`,priority=1
// +kubebuilder:printcolumn:name="Pass",type=integer,JSONPath=`.summary.pass`
// +kubebuilder:printcolumn:name="Fail",type=integer,JSONPath=`.summary.fail`
// +kubebuilder:printcolumn:name="Warn",type=integer,JSONPath=`.summary.warn`
// +kubebuilder:printcolumn:name="Error",type=integer,JSONPath=`.summary.error`
// +kubebuilder:printcolumn:name="Skip",type=integer,JSONPath=`.summary.skip`
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type PolicyReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Scope is the resource the report is about (a Deployment, a
	// Namespace, a Node), if one.
	// +optional
	Scope *corev1.ObjectReference `json:"scope,omitempty"`

	// ScopeSelector selects the resources the report is about; at most one
	// of Scope and ScopeSelector is set.
	// +optional
	ScopeSelector *metav1.LabelSelector `json:"scopeSelector,omitempty"`

	// Summary counts the results by outcome.
	// +optional
	Summary PolicyReportSummary `json:"summary,omitempty"`

	// Results are the results.
	// +optional
	Results []PolicyReportResult `json:"results,omitempty"`
}

// PolicyReportList is a list of PolicyReports.
// +kubebuilder:object:root=true
type PolicyReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PolicyReport `json:"items"`
}

// ClusterPolicyReport holds the results of policies for cluster-scoped
// resources.
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=clusterpolicyreports,scope="Cluster",shortName=cpolr
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.scope.kind`,priority=1
// +kubebuilder:printcolumn:name="Name",type=string,JSONPath=`.scope.name`,priority=1
// +kubebuilder:printcolumn:name="Pass",type=integer,JSONPath=`.summary.pass`
// +kubebuilder:printcolumn:name="Fail",type=integer,JSONPath=`.summary.fail`
// +kubebuilder:printcolumn:name="Warn",type=integer,JSONPath=`.summary.warn`
// +kubebuilder:printcolumn:name="Error",type=integer,JSONPath=`.summary.error`
// +kubebuilder:printcolumn:name="Skip",type=integer,JSONPath=`.summary.skip`
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type ClusterPolicyReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Scope is the resource the report is about, if one.
	// +optional
	Scope *corev1.ObjectReference `json:"scope,omitempty"`

	// ScopeSelector selects the resources the report is about; at most one
	// of Scope and ScopeSelector is set.
	// +optional
	ScopeSelector *metav1.LabelSelector `json:"scopeSelector,omitempty"`

	// Summary counts the results by outcome.
	// +optional
	Summary PolicyReportSummary `json:"summary,omitempty"`

	// Results are the results.
	// +optional
	Results []PolicyReportResult `json:"results,omitempty"`
}

// ClusterPolicyReportList is a list of ClusterPolicyReports.
// +kubebuilder:object:root=true
type ClusterPolicyReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterPolicyReport `json:"items"`
}
