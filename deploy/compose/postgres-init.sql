-- One database per store (each has its own migrations); the backbone's store is POSTGRES_DB.
CREATE DATABASE registry OWNER edi;
CREATE DATABASE objects OWNER edi;
