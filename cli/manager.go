package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portcullis-dev/portcullis/internal/manager"
)

func newManagerCmd() *cobra.Command {
	opts := manager.NewOptions()
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "Run the controllers: ConstraintTemplates become constraint kinds, constraints reach the engine",
		Long: `Run the Portcullis controller manager against a cluster.

It installs the ConstraintTemplate CRD (--install-crds), compiles every
ConstraintTemplate into the policy engine, creates its constraint CRD and
loads the constraints of that kind, reporting each in status.byPod under
--pod-id. /readyz on --health-probe-bind-address fails until everything that
existed at startup is loaded; Prometheus metrics are on --metrics-bind-address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Complete(); err != nil {
				return err
			}
			logger := zap.New(zap.UseFlagOptions(&opts.Log), zap.WriteTo(cmd.ErrOrStderr()))
			ctrl.SetLogger(logger)
			cfg, err := opts.RESTConfig()
			if err != nil {
				return err
			}
			m, err := manager.New(cfg, opts)
			if err != nil {
				return err
			}
			// After the first signal, a second one ends the process at once,
			// --shutdown-delay or not, as in Gatekeeper: the handler is
			// removed before the context ends, so that nothing the
			// manager does once it has ended (its "Stopping after
			// --shutdown-delay" line) comes before it.
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			go func() {
				select {
				case <-sigs:
				case <-ctx.Done():
				}
				signal.Stop(sigs)
				cancel()
			}()
			return m.Start(ctrl.LoggerInto(ctx, logger))
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}
