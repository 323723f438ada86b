package mutation

import "testing"

func TestParseImage(t *testing.T) {
	for _, tc := range []struct {
		ref  string
		want image
	}{
		{"nginx", image{path: "nginx"}},
		{"nginx:latest", image{path: "nginx", tag: ":latest"}},
		{"library/nginx@sha256:abc", image{path: "library/nginx", tag: "@sha256:abc"}},
		{"my.registry.io:2000/repo/app:latest", image{domain: "my.registry.io:2000", path: "repo/app", tag: ":latest"}},
		{"localhost/app", image{domain: "localhost", path: "app"}},
		{"localhost:5000/app:v1", image{domain: "localhost:5000", path: "app", tag: ":v1"}},
		{"repo/app", image{path: "repo/app"}},
		{"", image{}},
	} {
		got := parseImage(tc.ref)
		if got != tc.want {
			t.Errorf("parseImage(%q) = %+v, want %+v", tc.ref, got, tc.want)
		}
		if got.String() != tc.ref {
			t.Errorf("parseImage(%q).String() = %q", tc.ref, got.String())
		}
	}
}

func TestImageSetter(t *testing.T) {
	for _, tc := range []struct {
		set      imageSetter
		old, new string
	}{
		{imageSetter{domain: "my.registry.io", path: "repo/app", tag: "@sha256:abcde67890123456789abc345678901a"}, "nginx:latest", "my.registry.io/repo/app@sha256:abcde67890123456789abc345678901a"},
		{imageSetter{domain: "my.registry.io"}, "docker.io/library/nginx:1.25", "my.registry.io/library/nginx:1.25"},
		{imageSetter{domain: "my.registry.io"}, "nginx", "my.registry.io/nginx"},
		{imageSetter{tag: ":v2"}, "localhost:5000/app@sha256:00", "localhost:5000/app:v2"},
		{imageSetter{path: "lib/app"}, "a.io/x:1", "a.io/lib/app:1"},
		{imageSetter{tag: ":v2"}, "", ":v2"},
	} {
		for _, start := range []string{tc.old, tc.new} {
			obj := map[string]any{"image": start}
			changed, err := tc.set.set(obj, "image", objectMeta{})
			if err != nil || obj["image"] != tc.new || changed != (start != tc.new) {
				t.Errorf("%+v on %q = %v, changed %t, %v; want %q", tc.set, start, obj["image"], changed, err, tc.new)
			}
		}
		if err := checkImageParts(tc.set.domain, tc.set.path, tc.set.tag); err != nil {
			t.Errorf("checkImageParts(%+v): %v", tc.set, err)
		}
	}
	obj := map[string]any{"image": 3}
	if _, err := (&imageSetter{tag: ":v1"}).set(obj, "image", objectMeta{}); err == nil {
		t.Error("a number at an image location was not refused")
	}
}

func TestCheckImagePartsValid(t *testing.T) {
	for _, p := range [][3]string{
		{"localhost", "", ""}, {"localhost:5000", "", ""}, {"a.b", "", ""}, {"my-registry.example.com:443", "", ""},
		{"", "app", ""}, {"", "repo/app", ""}, {"", "a__b-c---d/e.f", ""}, {"a.io", "my.repo.lib/app", ""},
		{"", "", ":latest"}, {"", "", ":v1.2_3-rc"}, {"", "", "@sha256:0123456789abcdef0123456789ABCDEF"},
	} {
		if err := checkImageParts(p[0], p[1], p[2]); err != nil {
			t.Errorf("checkImageParts(%q): %v", p, err)
		}
	}
	for _, p := range [][3]string{
		{"-a.b", "", ""}, {"a.b.", "", ""}, {"a.b:port", "", ""}, {"", "app/", ""}, {"", "/app", ""}, {"", "a..b", ""},
		{"", "", ":" + string(make([]byte, 129))}, {"", "", ":-v"}, {"", "", "@sha256"}, {"", "localhost/app", ""},
	} {
		if err := checkImageParts(p[0], p[1], p[2]); err == nil {
			t.Errorf("checkImageParts(%q) accepted", p)
		}
	}
}
