package cli

import (
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
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// After the first signal, a second one ends the process at once,
			// --shutdown-delay or not, as in Gatekeeper.
			go func() {
				<-ctx.Done()
				stop()
			}()
			return m.Start(ctrl.LoggerInto(ctx, logger))
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}
