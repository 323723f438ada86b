package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/internal/dev"
)

func newDevCmd() *cobra.Command {
	o := dev.Options{DataDir: ".dev", TemplatesDir: "templates", Timeout: 5 * time.Minute}
	cmd := &cobra.Command{
		Use:   "dev [flags] [-- manager flags]",
		Short: "Run a local control plane (etcd, kube-apiserver, kube-controller-manager) with Portcullis and the sample policies",
		Long: `Run etcd, kube-apiserver and kube-controller-manager on loopback ports,
with their state under --data-dir so it survives a restart, install the CRDs,
run the manager in this process (webhook by URL on 127.0.0.1, audit every 30s,
DELETE and CONNECT judged), apply the templates/ library with its sample
constraints to a new data dir (--samples applies them again), and write
<data-dir>/kubeconfig. Prints "portcullis dev: ready; <what the webhook judges>"
once everything serves. There is no kubelet: Pods are created but stay Pending.

Flags after -- go to the manager (see portcullis manager --help), e.g.
portcullis dev -- --audit-interval=10 --enable-connect-operations=false.

SIGINT, SIGTERM or SIGHUP stops everything, a second one kills it. Only one
instance may use a data dir; a run that was killed is recovered by the next
one, which stops what it left running and removes its webhook configuration.

The control-plane binaries come from --assets-dir (default $KUBEBUILDER_ASSETS,
else bin/k8s); when missing they are built with hack/build-control-plane.sh.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			managerArgs := args
			if at := cmd.ArgsLenAtDash(); at >= 0 {
				if at > 0 {
					return fmt.Errorf("unexpected argument %q: manager flags go after --", args[0])
				}
			} else if len(args) > 0 {
				return fmt.Errorf("unexpected argument %q: manager flags go after --", args[0])
			}
			if o.Samples && o.NoSamples {
				return errors.New("--samples and --no-samples contradict each other: give one")
			}
			mopts, err := dev.ManagerOptions(managerArgs)
			if err != nil {
				return err
			}
			o.Manager = mopts
			o.Stdout, o.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			o.HoldAt = os.Getenv(dev.HoldEnv) // tests only
			if err := dev.Run(cmd.Context(), o); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "portcullis dev: %v\n", err)
				return exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", o.DataDir, "directory of etcd's data, the API server's certificates, the kubeconfig, the logs, the lock and the PIDs of what runs")
	f.StringVar(&o.ReadyFile, "ready-file", "", "file to write, with the kubeconfig's path, once ready")
	f.StringVar(&o.AssetsDir, "assets-dir", "", "directory of etcd, kube-apiserver and kube-controller-manager (default $KUBEBUILDER_ASSETS, else bin/k8s)")
	f.StringVar(&o.TemplatesDir, "templates", o.TemplatesDir, "the template library to apply")
	f.BoolVar(&o.Samples, "samples", false, "apply the templates and sample constraints even if the data dir has had them (they are applied to a new data dir only)")
	f.BoolVar(&o.NoSamples, "no-samples", false, "apply no templates or sample constraints, even to a new data dir")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long start-up may take in all; each step has its own bound too")
	f.BoolVar(&o.StopOnly, "stop", false, "only stop what a killed portcullis dev of --data-dir left running (etcd, kube-apiserver, kube-controller-manager), then exit; refused while one runs")
	return cmd
}
