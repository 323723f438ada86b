package manager

import (
	"fmt"
	"slices"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/webhook"
)

// setupWebhook adds the admission webhooks: the validating one serving
// from this manager's engine once it is ready, the mutating one from its
// mutation system.
func (m *Manager) setupWebhook() error {
	o := m.opts.Webhook
	o.Namespace = m.opts.Namespace
	o.Ready = m.Ready
	o.EngineOptions = m.opts.Engine
	o.Excluded = func(ns string) bool { return m.sync.Excludes(configv1alpha1.ProcessWebhook, ns) }
	o.Trace = m.sync.Traces().Lookup
	o.Reviewer = m.reviewer
	if m.mutation != nil && slices.Contains(m.opts.Operations, OperationMutationWebhook) {
		o.MutationSystem = m.mutation
		o.MutationExcluded = func(ns string) bool { return m.sync.Excludes(configv1alpha1.ProcessMutationWebhook, ns) }
	}
	if err := webhook.Setup(m.mgr, m.engine, o); err != nil {
		return fmt.Errorf("setting up the webhook: %w", err)
	}
	return nil
}

// setupAudit adds the periodic audit; it runs on the leader only.
func (m *Manager) setupAudit() error {
	o := m.opts.Audit
	if o.Interval == 0 {
		return nil
	}
	o.Excluded = func(ns string) bool { return m.sync.Excludes(configv1alpha1.ProcessAudit, ns) }
	o.Ready = m.Ready
	o.Namespace = m.opts.Namespace
	if err := audit.Setup(m.mgr, m.reviewer, o); err != nil {
		return fmt.Errorf("setting up the audit: %w", err)
	}
	return nil
}
