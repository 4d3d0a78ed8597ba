"""One module per area of the web application: desk, dashboard, delivery, health."""
