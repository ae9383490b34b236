package ecs_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type taskDef struct {
	Family                  string                  `json:"family"`
	NetworkMode             string                  `json:"networkMode"`
	TaskRoleArn             string                  `json:"taskRoleArn"`
	ExecutionRoleArn        string                  `json:"executionRoleArn"`
	Volumes                 []struct{ Name string } `json:"volumes"`
	ContainerDefinitions    []container             `json:"containerDefinitions"`
	RequiresCompatibilities []string                `json:"requiresCompatibilities"`
}

type container struct {
	Name         string   `json:"name"`
	Essential    bool     `json:"essential"`
	Command      []string `json:"command"`
	StopTimeout  int      `json:"stopTimeout"`
	PortMappings []struct {
		ContainerPort int    `json:"containerPort"`
		Protocol      string `json:"protocol"`
	} `json:"portMappings"`
	Environment []struct{ Name, Value string } `json:"environment"`
	MountPoints []struct {
		SourceVolume  string `json:"sourceVolume"`
		ContainerPath string `json:"containerPath"`
	} `json:"mountPoints"`
	HealthCheck *struct {
		Command []string `json:"command"`
		Timeout int      `json:"timeout"`
	} `json:"healthCheck"`
	LogConfiguration struct {
		LogDriver string            `json:"logDriver"`
		Options   map[string]string `json:"options"`
	} `json:"logConfiguration"`
	DependsOn []struct{ ContainerName, Condition string } `json:"dependsOn"`
}

func (c container) env(name string) (string, bool) {
	for _, e := range c.Environment {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestTaskDefinitions(t *testing.T) {
	tests := []struct {
		file       string
		containers []string
		sidecar    bool
	}{
		{"task-definition.json", []string{"streamd"}, false},
		{"task-definition-sidecar.json", []string{"streamd", "app"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var td taskDef
			readJSON(t, tt.file, &td)
			if td.NetworkMode != "awsvpc" || td.TaskRoleArn == "" || td.ExecutionRoleArn == "" {
				t.Errorf("networkMode %q, task role %q, execution role %q: want awsvpc and both roles", td.NetworkMode, td.TaskRoleArn, td.ExecutionRoleArn)
			}
			var names []string
			byName := map[string]container{}
			for _, c := range td.ContainerDefinitions {
				names = append(names, c.Name)
				byName[c.Name] = c
			}
			if !slices.Equal(names, tt.containers) {
				t.Fatalf("containers %v, want %v", names, tt.containers)
			}
			s := byName["streamd"]
			if !s.Essential {
				t.Error("streamd is not essential")
			}
			if s.StopTimeout != 30 {
				t.Errorf("stopTimeout %d, want 30 (above the default 25s shutdown_timeout)", s.StopTimeout)
			}
			if len(s.Command) < 3 || s.Command[0] != "run" || s.Command[1] != "--config" {
				t.Errorf("command %v, want run --config FILE", s.Command)
			}
			// distroless has no shell: the health check must exec the binary.
			hc := s.HealthCheck
			if hc == nil || len(hc.Command) < 3 || hc.Command[0] != "CMD" || hc.Command[1] != "/streamd" || hc.Command[2] != "health" {
				t.Fatalf("healthCheck %+v, want [CMD /streamd health ...]", hc)
			}
			listen, ok := s.env("STREAMD_HTTP_LISTEN")
			if !ok {
				t.Fatal("no STREAMD_HTTP_LISTEN")
			}
			port := listen[strings.LastIndexByte(listen, ':')+1:]
			if i := slices.Index(hc.Command, "--url"); i < 0 || !strings.Contains(hc.Command[i+1], "127.0.0.1:"+port+"/healthz") {
				t.Errorf("health check %v does not probe /healthz on the listen port %s", hc.Command, port)
			}
			if i := slices.Index(hc.Command, "--timeout"); i < 0 {
				t.Errorf("health check %v has no --timeout", hc.Command)
			} else if d, err := time.ParseDuration(hc.Command[i+1]); err != nil || d >= time.Duration(hc.Timeout)*time.Second {
				t.Errorf("health check %v: the command's timeout must stay below the check's %ds", hc.Command, hc.Timeout)
			}
			mapped := false
			for _, pm := range s.PortMappings {
				mapped = mapped || (port == "9464" && pm.ContainerPort == 9464 && pm.Protocol == "tcp")
			}
			if !mapped {
				t.Errorf("port 9464 is not mapped: %+v", s.PortMappings)
			}
			if r, ok := s.env("AWS_REGION"); !ok || r == "" {
				t.Error("AWS_REGION is not set")
			}
			if s.LogConfiguration.LogDriver != "awslogs" || s.LogConfiguration.Options["awslogs-group"] == "" ||
				s.LogConfiguration.Options["awslogs-region"] == "" || s.LogConfiguration.Options["awslogs-stream-prefix"] == "" {
				t.Errorf("log configuration %+v, want awslogs with group, region and stream prefix", s.LogConfiguration)
			}
			vols := map[string]bool{}
			for _, v := range td.Volumes {
				vols[v.Name] = true
			}
			for _, mp := range s.MountPoints {
				if !vols[mp.SourceVolume] {
					t.Errorf("mount of undeclared volume %q", mp.SourceVolume)
				}
			}
			if tt.sidecar {
				app := byName["app"]
				if len(app.DependsOn) != 1 || app.DependsOn[0].ContainerName != "streamd" || app.DependsOn[0].Condition != "HEALTHY" {
					t.Errorf("app dependsOn %+v, want streamd HEALTHY (so it stops before streamd drains)", app.DependsOn)
				}
				ingest, _ := s.env("STREAMD_INGEST_LISTEN")
				if !strings.HasPrefix(ingest, "127.0.0.1:") {
					t.Errorf("sidecar ingest listens on %q, want loopback", ingest)
				}
				for _, pm := range s.PortMappings {
					if strings.HasSuffix(ingest, ":"+itoa(pm.ContainerPort)) {
						t.Errorf("the ingest port %d is mapped; it must stay on loopback", pm.ContainerPort)
					}
				}
				if u, _ := app.env("EVENTS_URL"); !strings.Contains(u, ingest) {
					t.Errorf("app EVENTS_URL %q does not point at the sidecar %q", u, ingest)
				}
			}
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

type policy struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string          `json:"Sid"`
	Effect    string          `json:"Effect"`
	Principal json.RawMessage `json:"Principal"`
	Action    json.RawMessage `json:"Action"`
	Resource  json.RawMessage `json:"Resource"`
	Condition json.RawMessage `json:"Condition"`
}

// list decodes an IAM string-or-list.
func list(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		t.Fatalf("not a string or list: %s", raw)
	}
	return many
}

func TestPolicies(t *testing.T) {
	files, err := filepath.Glob("iam/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies: %v", err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if !strings.Contains(string(readme), filepath.Base(f)) {
				t.Errorf("README.md does not mention %s", f)
			}
			var p policy
			readJSON(t, f, &p)
			if p.Version != "2012-10-17" || len(p.Statement) == 0 {
				t.Fatalf("version %q with %d statements", p.Version, len(p.Statement))
			}
			trust := strings.Contains(f, "trust")
			sids := map[string]bool{}
			for _, s := range p.Statement {
				if s.Sid == "" || sids[s.Sid] {
					t.Errorf("statement without a unique Sid: %q", s.Sid)
				}
				sids[s.Sid] = true
				if s.Effect != "Allow" {
					t.Errorf("%s: effect %q", s.Sid, s.Effect)
				}
				actions := list(t, s.Action)
				if len(actions) == 0 {
					t.Errorf("%s: no actions", s.Sid)
				}
				for _, a := range actions {
					svc, op, ok := strings.Cut(a, ":")
					if !ok || svc == "" || op == "" || strings.Contains(a, "*") {
						t.Errorf("%s: action %q is not one named action", s.Sid, a)
					}
				}
				if trust {
					if len(s.Principal) == 0 {
						t.Errorf("%s: trust policy without principal", s.Sid)
					}
					continue
				}
				res := list(t, s.Resource)
				if len(res) == 0 {
					t.Errorf("%s: no resource", s.Sid)
				}
				for _, r := range res {
					// "*" only where the API has no resource ARN.
					if r == "*" && !slices.ContainsFunc(actions, func(a string) bool {
						return a == "ecr:GetAuthorizationToken" || a == "dynamodb:ListStreams"
					}) {
						t.Errorf("%s: resource * for %v", s.Sid, actions)
					}
					if r != "*" && !strings.HasPrefix(r, "arn:aws:") {
						t.Errorf("%s: resource %q is not an ARN", s.Sid, r)
					}
				}
			}
		})
	}
}

// TestEveryFileIsJSON catches a broken file the typed tests do not read.
func TestEveryFileIsJSON(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".json" {
			return err
		}
		var v any
		readJSON(t, path, &v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
