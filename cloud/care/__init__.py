"""Care features beside the monitoring: the care team's chat on patients and alarms, and the
nutrition analysis for cardiac patients. Rules and text handling are pure; storage sits at the edge."""
