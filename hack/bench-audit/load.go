package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// loadCounts are the objects loaded.
type loadCounts struct {
	namespaces, configMaps, pods, deployments, services int
}

func (l loadCounts) String() string {
	return fmt.Sprintf("%d objects (%d ConfigMaps, %d Pods, %d Deployments, %d Services) in %d namespaces",
		l.configMaps+l.pods+l.deployments+l.services, l.configMaps, l.pods, l.deployments, l.services, l.namespaces)
}

// mix splits the objects of one namespace as 100 ConfigMaps, 50 Pods, 30
// Deployments and 20 Services per 200.
func mix(perNamespace int) (cms, pods, deploys, svcs int) {
	pods = perNamespace / 4
	deploys = perNamespace * 3 / 20
	svcs = perNamespace / 10
	cms = perNamespace - pods - deploys - svcs
	return
}

// load creates the namespaces and the objects, c.concurrency at a time.
func load(ctx context.Context, cl client.Client, c config) (loadCounts, error) {
	counts := loadCounts{namespaces: c.namespaces}
	objs := make(chan client.Object, 256)
	var (
		wg      sync.WaitGroup
		failed  atomic.Value
		created atomic.Int64
	)
	for range c.concurrency {
		wg.Go(func() {
			for o := range objs {
				if failed.Load() != nil {
					continue
				}
				if err := cl.Create(ctx, o); err != nil {
					failed.Store(fmt.Errorf("creating %T %s/%s: %w", o, o.GetNamespace(), o.GetName(), err))
					continue
				}
				created.Add(1)
			}
		})
	}
	send := func(o client.Object) { objs <- o }
	for i := range c.namespaces {
		ns := fmt.Sprintf("bench-%02d", i)
		err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": fmt.Sprintf("team-%d", i%5)}}})
		if err != nil {
			close(objs)
			wg.Wait()
			return counts, fmt.Errorf("creating Namespace %s: %w", ns, err)
		}
	}
	perNS := c.n / c.namespaces
	cms, pods, deploys, svcs := mix(perNS)
	for i := range c.namespaces {
		ns := fmt.Sprintf("bench-%02d", i)
		for j := range cms {
			send(configMap(ns, j))
		}
		for j := range pods {
			send(&corev1.Pod{ObjectMeta: objMeta(ns, "pod", j), Spec: podSpec(j)})
		}
		for j := range deploys {
			send(deployment(ns, j))
		}
		for j := range svcs {
			send(service(ns, j))
		}
	}
	close(objs)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return counts, err
	}
	counts.configMaps, counts.pods, counts.deployments, counts.services = cms*c.namespaces, pods*c.namespaces, deploys*c.namespaces, svcs*c.namespaces
	return counts, nil
}

func objMeta(ns, prefix string, i int) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: ns,
		Name:      fmt.Sprintf("%s-%05d", prefix, i),
		Labels:    map[string]string{"app": fmt.Sprintf("app-%d", i%20), "tier": []string{"web", "api", "db"}[i%3]},
	}
}

func configMap(ns string, i int) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: objMeta(ns, "cm", i),
		Data: map[string]string{
			"app.properties": fmt.Sprintf("server.port=%d\nlog.level=info\nfeature.flags=a,b,c\n", 8000+i%100),
			"owner":          fmt.Sprintf("team-%d", i%5),
		},
	}
}

// podSpec is a realistic pod, varied by i: some with limits, probes, a
// sidecar, a hardened or a privileged security context, images from
// several registries and tags.
func podSpec(i int) corev1.PodSpec {
	images := []string{"nginx:1.27", "nginx:latest", "registry.k8s.io/pause:3.9", "openpolicyagent/opa:0.60.0", "k8s.gcr.io/echoserver:1.10", "busybox"}
	app := corev1.Container{
		Name:  "app",
		Image: images[i%len(images)],
		Ports: []corev1.ContainerPort{{ContainerPort: 8080, Name: "http"}},
		Env:   []corev1.EnvVar{{Name: "MODE", Value: "production"}, {Name: "INDEX", Value: fmt.Sprint(i)}},
	}
	if i%2 == 0 {
		app.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		}
	}
	if i%3 == 0 {
		probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
		app.ReadinessProbe, app.LivenessProbe = probe, probe
	}
	switch {
	case i%10 == 0:
		app.SecurityContext = &corev1.SecurityContext{Privileged: new(true)}
	case i%2 == 1:
		app.SecurityContext = &corev1.SecurityContext{
			AllowPrivilegeEscalation: new(false), RunAsNonRoot: new(true), ReadOnlyRootFilesystem: new(true),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}
	}
	spec := corev1.PodSpec{Containers: []corev1.Container{app}}
	if i%4 == 0 {
		spec.Containers = append(spec.Containers, corev1.Container{Name: "log", Image: "busybox:1.36", Args: []string{"tail", "-f", "/var/log/app.log"}})
	}
	if i%5 == 0 {
		spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cm-00000"}}}}}
	}
	return spec
}

func deployment(ns string, i int) *appsv1.Deployment {
	m := objMeta(ns, "deploy", i)
	selector := map[string]string{"deployment": m.Name}
	labels := map[string]string{"deployment": m.Name, "app": m.Labels["app"]}
	return &appsv1.Deployment{
		ObjectMeta: m,
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(1 + i%5)),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec(i)},
		},
	}
}

func service(ns string, i int) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: objMeta(ns, "svc", i),
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": fmt.Sprintf("app-%d", i%20)},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	switch i % 20 {
	case 0:
		s.Spec.Type = corev1.ServiceTypeNodePort
	case 1:
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.AllocateLoadBalancerNodePorts = new(false)
	}
	return s
}
