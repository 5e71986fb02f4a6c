// the workbench's script
