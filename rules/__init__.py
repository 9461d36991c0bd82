"""Equipment rules → alarms → fault work orders; patrol and inspection rules → gaps."""
