package manager_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	"github.com/portcullis-dev/portcullis/controllers"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// TestRBAC runs the manager as a user with only the generated ClusterRole
// (config/rbac/role.yaml) and the leader election Role: the RBAC markers
// must grant everything the manager does.
func TestRBAC(t *testing.T) {
	ctx := t.Context()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	const user = "portcullis-rbac-test"
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manager.DefaultNamespace}}
	if err := env.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"role.yaml", "leader_election_role.yaml"} {
		data, err := os.ReadFile(filepath.Join(root, "config", "rbac", f))
		if err != nil {
			t.Fatal(err)
		}
		subject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}
		if f == "role.yaml" {
			role := &rbacv1.ClusterRole{}
			if err := yaml.Unmarshal(data, role); err != nil {
				t.Fatal(err)
			}
			role.Name = user
			binding := &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: user},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
				Subjects:   []rbacv1.Subject{subject},
			}
			createOwned(t, role, binding)
			continue
		}
		role := &rbacv1.Role{}
		if err := yaml.Unmarshal(data, role); err != nil {
			t.Fatal(err)
		}
		role.Name, role.Namespace = user, manager.DefaultNamespace
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: manager.DefaultNamespace},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
			Subjects:   []rbacv1.Subject{subject},
		}
		createOwned(t, role, binding)
	}
	au, err := env.Environment.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatalf("adding user: %v", err)
	}

	restricted, err := client.New(au.Config(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The role reads every kind (the sync of data.inventory needs it, as in
	// Gatekeeper) but writes few: creating a Secret must be refused.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "rbac-probe", Namespace: "default"}}
	if err := restricted.Create(ctx, secret); !apierrors.IsForbidden(err) {
		t.Fatalf("creating a Secret as %s: err = %v, want Forbidden (is the user restricted?)", user, err)
	}

	m := startManagerWith(t, au.Config(), startOpts{podID: "pod-rbac", leaderElect: true})
	apply(t, requiredLabels("v1", "K8sRBACCheck"))
	apply(t, constraint("K8sRBACCheck", "rbac", "deny", "team"))
	eventually(t, "the template to be Ready", func(ctx context.Context) (bool, error) {
		return templateLoaded(ctx, "k8srbaccheck", m.podID)
	})
	eventually(t, "the constraint to be enforced", func(ctx context.Context) (bool, error) {
		return constraintEnforced(ctx, "K8sRBACCheck", "rbac", m.podID)
	})
	eventually(t, "the replica's heartbeat Lease", func(ctx context.Context) (bool, error) {
		l := &coordinationv1.Lease{}
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: manager.DefaultNamespace, Name: controllers.HeartbeatLeaseName(m.podID)}, l)
		return err == nil, err
	})
	// The Config's status.
	cfg := &unstructured.Unstructured{}
	cfg.SetGroupVersionKind(configv1alpha1.GroupVersion.WithKind("Config"))
	cfg.SetName(configv1alpha1.Name)
	cfg.SetNamespace(manager.DefaultNamespace)
	if err := env.Client.Create(ctx, cfg); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), cfg) })
	eventually(t, "the replica's entry in the Config's status", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cfg), cfg); err != nil {
			return false, err
		}
		return testenv.ByPod(cfg, m.podID) != nil, fmt.Errorf("status %v", cfg.Object["status"])
	})
}

func createOwned(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := env.Client.Create(t.Context(), o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
}
