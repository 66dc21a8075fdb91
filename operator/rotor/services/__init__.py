"""Services: gather inputs (backends, Kubernetes), call the pure logic, apply the result."""
