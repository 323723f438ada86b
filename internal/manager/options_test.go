package manager

import (
	"os"
	"testing"

	"github.com/spf13/pflag"
)

func TestOptions(t *testing.T) {
	host, _ := os.Hostname()
	tests := []struct {
		name    string
		args    []string
		podName string
		want    func(o Options) bool
		wantErr bool
	}{
		{
			name: "defaults",
			want: func(o Options) bool {
				return o.Namespace == DefaultNamespace && o.LeaderElectionNamespace == DefaultNamespace &&
					o.PodID == host && o.InstallCRDs && !o.LeaderElect &&
					o.MetricsBindAddress == ":8080" && o.HealthProbeBindAddress == ":8081" &&
					o.EnableK8sNativeValidation && !o.Engine.DisableK8sNativeValidation &&
					o.Engine.DefaultK8sNativeValidationFailurePolicy == "Fail"
			},
		},
		{
			name: "K8s native validation",
			args: []string{"--enable-k8s-native-validation=false", "--default-k8s-native-validation-failure-policy=Ignore"},
			want: func(o Options) bool {
				return o.Engine.DisableK8sNativeValidation && o.Engine.DefaultK8sNativeValidationFailurePolicy == "Ignore"
			},
		},
		{name: "bad CEL failure policy", args: []string{"--default-k8s-native-validation-failure-policy=fail"}, wantErr: true},
		{
			name: "POD_NAME", podName: "portcullis-7d9f",
			want: func(o Options) bool { return o.PodID == "portcullis-7d9f" },
		},
		{
			name: "flags", podName: "ignored",
			args: []string{"--pod-id=p1", "--namespace=gk", "--leader-elect", "--install-crds=false", "--disable-builtin=opa.runtime", "--enable-http-send"},
			want: func(o Options) bool {
				return o.PodID == "p1" && o.Namespace == "gk" && o.LeaderElectionNamespace == "gk" && o.LeaderElect &&
					!o.InstallCRDs && len(o.Engine.DisabledBuiltins) == 1 && o.Engine.EnableHTTPSend
			},
		},
		{
			name: "leader election namespace",
			args: []string{"--leader-election-namespace=kube-system"},
			want: func(o Options) bool {
				return o.LeaderElectionNamespace == "kube-system" && o.Namespace == DefaultNamespace
			},
		},
		{name: "empty namespace", args: []string{"--namespace="}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POD_NAME", tc.podName)
			o := NewOptions()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := o.Complete()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Complete() = %v, want error %t", err, tc.wantErr)
			}
			if err == nil && !tc.want(o) {
				t.Errorf("options = %+v", o)
			}
		})
	}
}
